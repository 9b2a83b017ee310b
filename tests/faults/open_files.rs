//! The open-file limit: every connection takes a file descriptor, so a `max_connections`
//! above the process's limit would let a flood of sockets make `accept` fail (and leave
//! nothing for the database). The daemon runs here under `prlimit --nofile=300:300`
//! with the default `max_connections` (10000).

use std::process::Command;

use tokio::net::TcpStream;

use crate::daemon::{BIN, DEADLINE, Setup, message_event, post_signed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_above_the_open_file_limit_is_lowered_with_a_warning_and_accept_never_fails()
 {
    if !Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("SKIPPED: no prlimit on this machine");
        return;
    }
    let receiver = wiremock::MockServer::start().await;
    let setup = Setup::new(&receiver.uri(), &[0], "header_read_timeout_ms = 1000", "");
    let mut command = Command::new("prlimit");
    command
        .args(["--nofile=300:300", "--", BIN, "--config"])
        .arg(&setup.config)
        .arg("serve");
    setup.prepare(&mut command);
    let daemon = setup.start_with(command).await;

    let log = std::fs::read_to_string(&daemon.log).unwrap();
    let warning = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| {
            l["level"] == "WARN"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("server.max_connections does not fit"))
        })
        .unwrap_or_else(|| panic!("no warning about the open-file limit:\n{log}"));
    // 300 descriptors, a quarter of them kept for the database and outbound requests.
    assert_eq!(warning["max_connections"], 10000, "{warning}");
    assert_eq!(warning["using"], 225, "{warning}");

    // More sockets than descriptors: the ones past the limit wait in the backlog instead
    // of failing accept, and once the idle ones are closed a webhook gets in.
    let mut idle = Vec::new();
    for _ in 0..320 {
        idle.push(TcpStream::connect(("127.0.0.1", setup.port)).await.unwrap());
    }
    // A new connection (not one the daemon's client keeps alive), behind the flood.
    let response = tokio::time::timeout(
        DEADLINE,
        post_signed(
            &reqwest::Client::new(),
            &daemon.url("/hooks/demo"),
            &message_event("past-the-flood", "user-1", "hello"),
        ),
    )
    .await
    .expect("the webhook is answered")
    .unwrap();
    assert_eq!(response.status(), 200);
    drop(idle);
    let log = std::fs::read_to_string(&daemon.log).unwrap();
    assert!(
        !log.contains("Could not accept a connection"),
        "accept ran out of descriptors:\n{log}"
    );
}
