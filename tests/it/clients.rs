//! Slow and abusive clients: a slowloris, piles of idle sockets and more requests than the
//! daemon handles at once cannot keep a normal webhook out, and each is cut off by its
//! limit in `[server]`; webhooks, however slow, cannot take the API's request slots.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use channel_bridge::adapters::signature::WebhookKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{ADMIN_TOKEN, Options, REP_TOKEN, TestApp, secret, text_event, wait_until};

/// How long a test waits for the daemon to close what it should close.
const DEADLINE: Duration = Duration::from_secs(30);

fn limits(server: &str) -> Options {
    Options {
        server_extra: server.into(),
        ..Options::default()
    }
}

/// A webhook request head for `body`, signed, with `Content-Length: length` (which may
/// promise more than is sent).
fn webhook_head(body: &[u8], length: usize) -> String {
    let key = WebhookKey::parse(&secret()).unwrap();
    let id = format!("evt_{}", ulid::Ulid::new());
    let ts = chrono::Utc::now().timestamp();
    format!(
        "POST /hooks/demo HTTP/1.1\r\nhost: bridge\r\ncontent-type: application/json\r\n\
         webhook-id: {id}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {}\r\n\
         content-length: {length}\r\n\r\n",
        key.sign(&id, ts, body)
    )
}

/// Reads until the daemon closes the connection; returns what it sent.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all).await;
    String::from_utf8_lossy(&all).into_owned()
}

async fn normal_webhook_is_stored(app: &TestApp, id: &str) {
    let response = app
        .post_webhook("demo", &text_event(id, "user-ok", "a normal webhook"))
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_does_not_keep_a_normal_webhook_out_and_is_cut_off_at_the_header_timeout() {
    let app = TestApp::spawn_with(limits("header_read_timeout_ms = 1000")).await;
    const SLOW: usize = 200;
    let closed = Arc::new(AtomicUsize::new(0));
    let head = webhook_head(b"{}", 2).into_bytes();
    for _ in 0..SLOW {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        let (head, closed) = (head.clone(), closed.clone());
        tokio::spawn(async move {
            // One byte every 50 ms; a server without a header deadline would wait for the
            // whole head (about 30 s) and more.
            let mut buf = [0u8; 256];
            for byte in head.iter().cycle().take(4000) {
                tokio::select! {
                    read = stream.read(&mut buf) => match read {
                        Ok(0) | Err(_) => break,
                        Ok(_) => continue,
                    },
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {
                        if stream.write_all(&[*byte]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            closed.fetch_add(1, Ordering::SeqCst);
        });
    }

    normal_webhook_is_stored(&app, "during-slowloris").await;
    wait_until(
        "the daemon closed every slowloris connection",
        DEADLINE,
        || async { closed.load(Ordering::SeqCst) == SLOW },
    )
    .await;
    normal_webhook_is_stored(&app, "after-slowloris").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_the_header_timeout_and_cannot_exhaust_the_slots() {
    // Four times more idle sockets than connection slots.
    let app = TestApp::spawn_with(limits(
        "header_read_timeout_ms = 1000\nmax_connections = 50",
    ))
    .await;
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(app.addr).await.unwrap());
    }
    // A keep-alive connection that made one request and then went quiet is closed too.
    let mut kept_alive = TcpStream::connect(app.addr).await.unwrap();
    kept_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: bridge\r\n\r\n")
        .await
        .unwrap();

    // Waits for slots that the idle sockets free as they time out.
    normal_webhook_is_stored(&app, "among-idle-sockets").await;

    let answered = read_to_close(&mut kept_alive).await;
    assert!(
        answered.starts_with("HTTP/1.1 200"),
        "the request was answered before the idle close: {answered:?}"
    );
    for mut stream in idle {
        tokio::time::timeout(DEADLINE, read_to_close(&mut stream))
            .await
            .expect("the daemon closes an idle connection");
    }
}

/// Opens a webhook whose body stops after one byte of `body`: it holds a webhook slot
/// until its body deadline.
async fn stalled_webhook(app: &TestApp, body: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = webhook_head(body, body.len());
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..1]).await.unwrap();
    stream
}

/// The platform message ids stored in the app's only conversation, if any.
async fn stored_ids(app: &TestApp) -> Vec<String> {
    let Some(conversation) = app.conversations().await.into_iter().next() else {
        return Vec::new();
    };
    app.messages(conversation["id"].as_str().unwrap())
        .await
        .iter()
        .map(|m| m["platform_message_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_concurrency_limit_requests_are_shed_with_503() {
    // The stalled bodies outlast the probing by far: whether a probe is shed must not
    // depend on how fast a loaded machine probes.
    let app = TestApp::spawn_with(limits(
        "max_concurrent_webhooks = 2\nbody_read_timeout_ms = 120000",
    ))
    .await;
    let body = br#"{"type":"message"}"#;
    let mut stalled = Vec::new();
    for _ in 0..2 {
        stalled.push(stalled_webhook(&app, body).await);
    }

    // Probe until one is shed. A probe can overtake a stalled request to the slots (the
    // daemon serves connections concurrently): then the stalled one is shed instead and
    // holds nothing, so it is opened again, until two stalled requests hold both slots.
    let mut seen: Vec<(String, u128, u16)> = Vec::new();
    let started = std::time::Instant::now();
    let shed = loop {
        for stream in stalled.iter_mut() {
            let mut buf = [0u8; 1];
            let answered = !matches!(
                stream.try_read(&mut buf),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
            );
            if answered {
                *stream = stalled_webhook(&app, body).await;
            }
        }
        let id = format!("shed-{}", seen.len());
        let response = app
            .post_webhook("demo", &text_event(&id, "user-ok", "hello"))
            .await;
        let status = response.status().as_u16();
        seen.push((id, started.elapsed().as_millis(), status));
        if status == 503 {
            let retry_after = response.headers().get("retry-after").cloned();
            let body: serde_json::Value = response.json().await.unwrap();
            break (retry_after, body);
        }
        assert!(
            started.elapsed() < DEADLINE,
            "no probe was shed; (id, ms, status) of each: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (retry_after, body) = shed;
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    assert!(
        retry_after.is_some(),
        "a shed request says when to come back"
    );
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(
        health.status(),
        200,
        "probes answer while requests are shed"
    );

    // The stalled clients give up: their slots free, and webhooks are taken again.
    drop(stalled);
    wait_until("a webhook is stored again", DEADLINE, || async {
        app.post_webhook("demo", &text_event("after-the-overload", "user-ok", "hi"))
            .await
            .status()
            == 200
    })
    .await;
    // Exactly the probes that were taken (200) are stored, and what came after.
    let mut expected: Vec<String> = seen
        .iter()
        .filter(|(_, _, status)| *status == 200)
        .map(|(id, _, _)| id.clone())
        .collect();
    expected.push("after-the-overload".into());
    let mut stored = stored_ids(&app).await;
    stored.sort();
    expected.sort();
    assert_eq!(stored, expected, "shed requests stored nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_408_and_stores_nothing() {
    let app = TestApp::spawn_with(limits("body_read_timeout_ms = 1000")).await;
    let mut stream = stalled_webhook(&app, br#"{"type":"message"}"#).await;
    let answer = tokio::time::timeout(DEADLINE, read_to_close(&mut stream))
        .await
        .expect("the stalled body is cut off");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains(r#""code":"body_timeout""#), "{answer:?}");
    normal_webhook_is_stored(&app, "after-the-stall").await;
    assert_eq!(
        stored_ids(&app).await,
        ["after-the-stall"],
        "the cut-off request stored nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_bodies_dribbled_into_every_webhook_slot_leave_the_api_its_own() {
    // The API's budget is as small as the webhooks': with one shared budget the dribblers
    // would hold all of it.
    let app = TestApp::spawn_with(limits(
        "max_concurrent_webhooks = 8\nmax_concurrent_requests = 8",
    ))
    .await;
    // Twice as many unauthenticated clients as webhook slots, each sending its webhook
    // body a byte every 50 ms: never stalled, never done within the body timeout (30 s).
    const DRIBBLERS: usize = 16;
    let body = vec![b' '; 64 * 1024];
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut dribblers = Vec::new();
    for _ in 0..DRIBBLERS {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        let head = webhook_head(&body, body.len());
        stream.write_all(head.as_bytes()).await.unwrap();
        let stop = stop.clone();
        dribblers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if stream.write_all(b" ").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }

    let n = AtomicUsize::new(0);
    wait_until(
        "the dribblers hold every webhook slot",
        DEADLINE,
        || async {
            let id = format!("crowded-out-{}", n.fetch_add(1, Ordering::SeqCst));
            let response = app
                .post_webhook("demo", &text_event(&id, "user-ok", "hello"))
                .await;
            response.status() == 503
        },
    )
    .await;

    for token in [ADMIN_TOKEN, REP_TOKEN] {
        let (status, body) = app
            .api(
                reqwest::Method::GET,
                "/api/v1/conversations",
                None,
                Some(token),
            )
            .await;
        assert_eq!(
            status, 200,
            "the API answers while webhooks are shed: {body}"
        );
    }
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    stop.store(true, Ordering::SeqCst);
    for dribbler in dribblers {
        dribbler.await.unwrap();
    }
}
