//! CI smoke test of the benchmark tooling (issue 8): every scenario of
//! `channel-bridge-bench` runs with tiny counts against a daemon it spawns, exits 0 and
//! reports no errors, no lost messages and no inversions. These are not measurements:
//! figures come from `scripts/bench.sh` on a release build (BENCHMARKS.md).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const BENCH: &str = env!("CARGO_BIN_EXE_channel-bridge-bench");
const DAEMON: &str = env!("CARGO_BIN_EXE_channel-bridge");

/// Runs the bench with `args`, checks it exits 0, and returns the JSON result it printed.
fn bench(args: &[&str]) -> Value {
    bench_with(Command::new(BENCH).args(args), args)
}

fn bench_with(command: &mut Command, args: &[&str]) -> Value {
    let output = command.output().expect("the bench binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "channel-bridge-bench {args:?} exited {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

fn assert_zero(result: &Value, keys: &[&str]) {
    for key in keys {
        assert_eq!(result[*key], 0, "{key} in {result:#}");
    }
}

#[test]
fn client_measures_the_spawned_baseline_server() {
    let r = bench(&[
        "client",
        "--count",
        "200",
        "--concurrency",
        "4",
        "--max-seconds",
        "20",
    ]);
    assert_eq!(r["scenario"], "baseline");
    assert_eq!(r["ok"], 200);
    assert_zero(&r, &["errors"]);
}

#[test]
fn ingest_stores_every_acknowledged_webhook_exactly_once_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("results.jsonl");
    let report = report.to_str().unwrap();
    let r = bench(&[
        "ingest",
        "--daemon-bin",
        DAEMON,
        "--count",
        "300",
        "--concurrency",
        "8",
        "--contacts",
        "20",
        "--max-seconds",
        "20",
        "--report",
        report,
        "--label",
        "smoke",
    ]);
    assert_eq!(r["scenario"], "ingest");
    assert_eq!(r["ok"], 300);
    assert_eq!(r["stored_once"], 300);
    assert_eq!(r["verify_conversations"], 20);
    assert_zero(&r, &["errors", "lost", "missing", "duplicated"]);
    assert!(r["rss_idle_mb"].as_f64().is_some_and(|v| v > 0.0), "{r:#}");
    assert!(r["p99_ms"].as_f64().is_some(), "{r:#}");

    // The report reads what the scenario appended.
    let output = Command::new(BENCH)
        .args(["report", report])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("ingest smoke"), "{text}");
    assert!(Path::new(report).exists());
}

#[test]
fn deliver_sends_every_reply_in_order() {
    for extra in [&[][..], &["--backlog"][..], &["--rate", "200"][..]] {
        let mut args = vec![
            "deliver",
            "--daemon-bin",
            DAEMON,
            "--count",
            "150",
            "--conversations",
            "10",
            "--max-seconds",
            "20",
        ];
        args.extend_from_slice(extra);
        let r = bench(&args);
        assert_eq!(r["scenario"], "deliver");
        assert_eq!(r["received"], 150, "{r:#}");
        assert_zero(
            &r,
            &[
                "queue_errors",
                "missing",
                "inversions",
                "bad_receipts",
                "pending_after",
            ],
        );
    }
}

#[test]
fn reload_soak_loses_nothing_while_reloading() {
    let r = bench(&[
        "reload-soak",
        "--daemon-bin",
        DAEMON,
        "--reloads",
        "5",
        "--rate",
        "100",
        "--concurrency",
        "4",
        "--max-seconds",
        "20",
    ]);
    assert_eq!(r["scenario"], "reload-soak");
    assert_eq!(r["reloads_confirmed"], 5, "{r:#}");
    assert!(r["ok"].as_u64().is_some_and(|n| n > 0), "{r:#}");
    assert_zero(&r, &["failed_requests", "lost", "missing", "duplicated"]);
    assert_eq!(r["reload_errors"], Value::Array(vec![]), "{r:#}");
}

#[test]
fn growth_ingests_on_an_empty_and_a_filled_database_and_times_the_reads() {
    for (extra, mode) in [(&[][..], "http"), (&["--direct-fill"][..], "direct")] {
        let mut args = vec![
            "growth",
            "--daemon-bin",
            DAEMON,
            "--messages",
            "1000",
            "--fill-contacts",
            "50",
            "--count",
            "200",
            "--concurrency",
            "4",
            "--contacts",
            "20",
            "--queries",
            "3",
            "--max-seconds",
            "20",
        ];
        args.extend(extra);
        let r = bench(&args);
        assert_eq!(r["scenario"], "growth");
        assert_eq!(r["fill"]["mode"], mode, "{r:#}");
        assert_eq!(r["fill"]["ok"], 1000, "{r:#}");
        assert_eq!(r["empty"]["ok"], 200, "{r:#}");
        assert_eq!(r["full"]["ok"], 200, "{r:#}");
        assert_zero(&r, &["read_errors"]);
        for read in [
            "list",
            "list_next_page",
            "list_channel",
            "messages",
            "search_rare",
            "search_common",
        ] {
            assert!(
                r["reads"][read]["p99_ms"].as_f64().is_some(),
                "{read} was not timed ({mode} fill): {r:#}"
            );
            // Each read finds what the fill stored (the rare word is in one message).
            assert_eq!(
                r["reads"][read]["found"], 3,
                "{read} found nothing ({mode} fill): {r:#}"
            );
        }
    }
}

#[test]
fn hubspot_publish_publishes_every_message_once_with_and_without_the_limiter() {
    for (extra, mode) in [(&[][..], "unlimited"), (&["--limiter"][..], "limiter")] {
        let mut args = vec![
            "hubspot-publish",
            "--daemon-bin",
            DAEMON,
            "--count",
            "60",
            "--conversations",
            "6",
            "--max-seconds",
            "30",
        ];
        args.extend_from_slice(extra);
        let r = bench(&args);
        assert_eq!(r["scenario"], "hubspot-publish");
        assert_eq!(r["mode"], mode);
        assert_eq!(r["received"], 60, "{r:#}");
        assert_zero(
            &r,
            &[
                "ingest_errors",
                "missing",
                "duplicates",
                "rejected_429",
                "unexpected_requests",
                "pending_after",
                "dead",
            ],
        );
        assert!(r["max_in_10s"].as_u64().is_some_and(|m| m <= 60), "{r:#}");
    }
}

/// The PostgreSQL scenarios (`--storage-url`): ingest and the backlog drain against the
/// test database, each daemon in a schema of its own (the spawned daemon inherits
/// `CHANNEL_BRIDGE__STORAGE__SCHEMA`), dropped afterwards.
#[test]
#[cfg_attr(
    not(pg_tests),
    ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
)]
fn ingest_and_drain_run_on_postgresql() {
    let url = std::env::var("CHANNEL_BRIDGE_TEST_PG").expect("CHANNEL_BRIDGE_TEST_PG");
    // With a second of warm-up and the ANALYZE after it.
    let ingest = "ingest --count 200 --concurrency 8 --contacts 10 --warm-up 1";
    let drain = "deliver --count 100 --conversations 10 --backlog";
    // The last: three daemons on one database share the drain.
    let replicas = format!("{drain} --replicas 3");
    let scenarios = [ingest, drain, &replicas].map(|s| s.split(' ').collect::<Vec<_>>());
    for scenario in scenarios {
        let schema = format!(
            "bench_smoke_{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        let mut args = scenario;
        args.extend_from_slice(&[
            "--daemon-bin",
            DAEMON,
            "--storage-url",
            &url,
            "--max-seconds",
            "30",
        ]);
        let mut command = Command::new(BENCH);
        command
            .args(&args)
            .env("CHANNEL_BRIDGE__STORAGE__SCHEMA", &schema);
        let r = bench_with(&mut command, &args);
        let _ = Command::new("psql")
            .args([url.as_str(), "-q", "-c"])
            .arg(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .output();
        if r["scenario"] == "ingest" {
            assert_eq!(r["stored_once"], 200, "{r:#}");
            assert_zero(&r, &["errors", "lost", "missing", "duplicated"]);
            assert!(
                r["warm_up"]["ok"].as_u64().is_some_and(|ok| ok > 0),
                "{r:#}"
            );
            assert_zero(&r["warm_up"], &["errors"]);
        } else {
            assert_eq!(r["received"], 100, "{r:#}");
            assert_zero(
                &r,
                &["missing", "inversions", "duplicates", "pending_after"],
            );
        }
    }
}
