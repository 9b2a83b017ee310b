//! A full disk under the store: webhooks get 503 (platforms redeliver), nothing is
//! half-written, and the daemon recovers by itself once space is freed.
//!
//! The database lives on a small tmpfs mounted in a private mount namespace of the daemon
//! (`unshare --mount --map-root-user`), nearly filled by a ballast file; the test frees the
//! space by deleting the ballast through `/proc/<pid>/root`.

use std::collections::HashSet;
use std::process::Command;

use serde_json::Value;

use crate::daemon::{DEADLINE, Setup, inside, message_event, wait_until};

/// Whether this machine lets an unprivileged process mount a tmpfs in its own namespace.
fn can_mount_tmpfs() -> bool {
    Command::new("unshare")
        .args(["--mount", "--map-root-user", "--", "sh", "-c"])
        .arg("d=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs \"$d\"")
        .status()
        .is_ok_and(|s| s.success())
}

fn big_text(n: usize) -> String {
    format!("{n}:{}", "x".repeat(100 * 1024))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_writes_nothing_half_and_recovers_when_space_is_freed() {
    if !can_mount_tmpfs() {
        eprintln!("SKIPPED: this machine cannot mount a tmpfs in a user namespace (unshare -rm)");
        return;
    }
    let receiver = wiremock::MockServer::start().await;
    let setup = Setup::new(&receiver.uri(), &[0, 100], "", "");
    let data = setup.db.parent().unwrap().to_owned();
    std::fs::create_dir_all(&data).unwrap();
    // 8 MiB of tmpfs, 5 MiB of it taken by the ballast.
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--map-root-user", "--", "sh", "-c"])
        .arg(
            "mount -t tmpfs -o size=8m tmpfs \"$1\" && \
             dd if=/dev/zero of=\"$1/ballast\" bs=1M count=5 2>/dev/null && \
             exec \"$2\" --config \"$3\" serve",
        )
        .arg("sh")
        .arg(&data)
        .arg(crate::daemon::BIN)
        .arg(&setup.config);
    setup.prepare(&mut command);
    let daemon = setup.start_with(command).await;

    // Fill the disk with 100 KiB messages until the store refuses one.
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for n in 0..400 {
        let id = format!("big-{n}");
        let response = daemon
            .post_webhook(
                "demo",
                &message_event(&id, &format!("user-{}", n % 4), &big_text(n)),
            )
            .await
            .expect("the daemon answers");
        match response.status().as_u16() {
            200 => acknowledged.push(id),
            503 => {
                assert!(response.headers().contains_key("retry-after"));
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
                refused = Some(n);
                break;
            }
            other => panic!(
                "webhook {id} got {other}: {}",
                response.text().await.unwrap()
            ),
        }
    }
    let refused = refused.expect("the disk filled up and a webhook got 503");
    assert!(
        !acknowledged.is_empty(),
        "some webhooks fit before the disk filled"
    );
    // The same redelivery right away: refused again while there is no room, or stored if
    // the checkpointer has meanwhile given the log's room back (the daemon recovers room
    // by itself, #15 item 8: a race this test cannot order). Nothing else, and the daemon
    // stays up either way; what is stored is checked whole and once below.
    let again = daemon
        .post_webhook(
            "demo",
            &message_event(&format!("big-{refused}"), "user-0", &big_text(refused)),
        )
        .await
        .unwrap();
    match again.status().as_u16() {
        200 => {}
        503 => {
            let body: Value = again.json().await.unwrap();
            assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
        }
        other => panic!(
            "the redelivery got {other}: {}",
            again.text().await.unwrap()
        ),
    }
    let health = daemon
        .http
        .get(daemon.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "a full disk does not kill the daemon");

    // Space comes back; the platform's redelivery of the refused webhook now lands.
    std::fs::remove_file(inside(daemon.pid(), &data.join("ballast"))).expect("free the space");
    wait_until("the redelivered webhook is stored", DEADLINE, || async {
        let event = message_event(&format!("big-{refused}"), "user-0", &big_text(refused));
        daemon
            .post_webhook("demo", &event)
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    acknowledged.push(format!("big-{refused}"));

    // Every acknowledged message exactly once and whole; the refused ones not at all
    // before their redelivery; every conversation with its ticket.
    let messages = daemon.all_messages().await;
    let mut seen = HashSet::new();
    for message in &messages {
        let id = message["platform_message_id"].as_str().unwrap().to_owned();
        let n: usize = id.trim_start_matches("big-").parse().unwrap();
        assert_eq!(
            message["parts"][0]["text"].as_str().map(str::len),
            Some(big_text(n).len()),
            "{id} is whole"
        );
        assert!(seen.insert(id.clone()), "{id} stored twice");
    }
    let expected: HashSet<String> = acknowledged.into_iter().collect();
    assert_eq!(
        seen, expected,
        "exactly the acknowledged messages are stored"
    );
    for conversation in daemon.conversations().await {
        assert!(
            conversation["ticket_id"].is_string(),
            "a conversation without its ticket: {conversation}"
        );
    }
    // The file itself is sound.
    let conn = rusqlite::Connection::open(inside(daemon.pid(), &setup.db)).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}
