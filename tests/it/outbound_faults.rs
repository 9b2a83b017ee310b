//! Outbound faults: the in-house app misbehaves in each way it can (500s for a while, 429
//! with Retry-After, hanging past the timeout, refusing connections, answering slowly,
//! 200 with an error body). Once it recovers, every reply is delivered, in order per
//! conversation, and nothing was dead-lettered before its schedule ran out.
//!
//! The app is a real loopback server (not wiremock), so it can also stop listening.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

use crate::harness::{Options, TestApp, items, text_event, wait_until};

/// How the in-house app answers right now.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// 200 with an id: takes the reply.
    Healthy,
    /// 500 to everything.
    ServerError,
    /// 429 with `Retry-After: 1`.
    RateLimited,
    /// Reads the request and never answers.
    Hang,
    /// Not listening: connections are refused.
    Refuse,
    /// Takes the reply, but only after 300 ms (within the send timeout).
    Slow,
    /// 200 whose body says it failed.
    ErrorBody,
}

/// What the app saw: every attempt, and the replies it took.
#[derive(Default)]
struct Seen {
    attempts: usize,
    taken: Vec<Value>,
}

/// A loopback in-house app that can be told to misbehave.
struct App {
    addr: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    seen: Arc<Mutex<Seen>>,
    /// The accept loop and every connection, aborted when the app stops listening.
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl App {
    async fn start() -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app = Arc::new(Self {
            addr: listener.local_addr().unwrap(),
            fault: Arc::new(Mutex::new(Fault::Healthy)),
            seen: Arc::default(),
            tasks: Arc::default(),
        });
        app.serve(listener);
        app
    }

    fn url(&self) -> String {
        format!("http://{}/outbound", self.addr)
    }

    fn serve(&self, listener: TcpListener) {
        let (fault, seen, tasks) = (self.fault.clone(), self.seen.clone(), self.tasks.clone());
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (fault, seen) = (fault.clone(), seen.clone());
                let connection = tokio::spawn(async move {
                    let service =
                        service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                            let (fault, seen) = (fault.clone(), seen.clone());
                            async move {
                                let body = request.into_body().collect().await.unwrap().to_bytes();
                                let now = *fault.lock().unwrap();
                                seen.lock().unwrap().attempts += 1;
                                let (status, text) = match now {
                                    Fault::Healthy | Fault::Slow => {
                                        if now == Fault::Slow {
                                            tokio::time::sleep(Duration::from_millis(300)).await;
                                        }
                                        let reply: Value = serde_json::from_slice(&body).unwrap();
                                        let id = format!("app-{}", reply["id"].as_str().unwrap());
                                        seen.lock().unwrap().taken.push(reply);
                                        (200, json!({"id": id}).to_string())
                                    }
                                    Fault::ServerError => (500, "{}".to_owned()),
                                    Fault::RateLimited => (429, "{}".to_owned()),
                                    Fault::ErrorBody => {
                                        (200, json!({"error": {"code": "queue_full"}}).to_string())
                                    }
                                    Fault::Hang | Fault::Refuse => {
                                        std::future::pending::<()>().await;
                                        unreachable!()
                                    }
                                };
                                let mut response =
                                    hyper::Response::new(Full::new(Bytes::from(text)));
                                *response.status_mut() =
                                    hyper::StatusCode::from_u16(status).unwrap();
                                response
                                    .headers_mut()
                                    .insert("content-type", "application/json".parse().unwrap());
                                if status == 429 {
                                    response
                                        .headers_mut()
                                        .insert("retry-after", "1".parse().unwrap());
                                }
                                Ok::<_, Infallible>(response)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                tasks.lock().unwrap().push(connection.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(server.abort_handle());
    }

    /// Starts misbehaving in this way (or recovers, with `Healthy`).
    async fn set(&self, fault: Fault) {
        let before = std::mem::replace(&mut *self.fault.lock().unwrap(), fault);
        if fault == Fault::Refuse {
            // Stop listening and drop every open connection: the port refuses.
            for task in self.tasks.lock().unwrap().drain(..) {
                task.abort();
            }
        } else if before == Fault::Refuse {
            let listener = TcpListener::bind(self.addr).await.expect("listen again");
            self.serve(listener);
        }
    }

    fn attempts(&self) -> usize {
        self.seen.lock().unwrap().attempts
    }

    /// Reply ids the app took, per conversation, in the order it took them, each
    /// repeat of the reply just before it folded (a retry of a reply taken but not
    /// acknowledged in time is a duplicate, not a reordering).
    fn taken(&self) -> BTreeMap<String, Vec<String>> {
        let mut taken: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for reply in &self.seen.lock().unwrap().taken {
            let ids = taken
                .entry(reply["conversation_id"].as_str().unwrap().to_owned())
                .or_default();
            let id = reply["id"].as_str().unwrap().to_owned();
            if ids.last() != Some(&id) {
                ids.push(id);
            }
        }
        taken
    }
}

/// The schedule: an attempt every 100 ms, 40 in all (about 4 s before a dead letter).
const SCHEDULE_LEN: usize = 40;

/// Three replies in each of two conversations, queued while the app misbehaves in
/// `fault`; the app recovers once it has refused a few attempts (or, when refusing
/// connections, once the outbox has recorded failed attempts).
async fn replies_survive(fault: Fault) {
    let app = App::start().await;
    let bridge = TestApp::spawn_with(Options {
        outbound_url: Some(app.url()),
        retry_schedule_ms: std::iter::once(0)
            .chain(std::iter::repeat_n(100, SCHEDULE_LEN - 1))
            .collect(),
        timeout_ms: 1000,
        ..Options::default()
    })
    .await;
    for user in ["user-1", "user-2"] {
        let event = text_event(&format!("in-{user}"), user, "hello");
        assert_eq!(bridge.post_webhook("demo", &event).await.status(), 200);
    }
    let conversations: Vec<String> = bridge
        .conversations()
        .await
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    app.set(fault).await;

    let mut queued: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for round in 0..3 {
        for conversation in &conversations {
            let (status, reply) = bridge.reply(conversation, &format!("reply {round}")).await;
            assert_eq!(status, 202, "{reply}");
            queued
                .entry(conversation.clone())
                .or_default()
                .push(reply["id"].as_str().unwrap().to_owned());
        }
    }

    // Let the fault bite: failed attempts recorded on both conversations.
    wait_until("attempts have failed", Duration::from_secs(30), || async {
        let pending = items(bridge.get("/api/v1/deliveries?state=pending").await);
        let failed = pending
            .iter()
            .filter(|d| d["attempts"].as_u64() >= Some(2))
            .count();
        failed >= 2 && (fault == Fault::Refuse || app.attempts() >= 4)
    })
    .await;
    let dead = items(bridge.get("/api/v1/deliveries?state=dead").await);
    assert!(
        dead.is_empty(),
        "dead-lettered before the schedule ran out: {dead:?}"
    );

    app.set(Fault::Healthy).await;
    bridge.drain_outbox().await;

    assert_eq!(
        app.taken(),
        queued,
        "every reply taken, in the order queued, per conversation"
    );
    let dead = items(bridge.get("/api/v1/deliveries?state=dead").await);
    assert!(dead.is_empty(), "{dead:?}");
    for conversation in &conversations {
        for message in bridge.messages(conversation).await {
            if message["direction"] == "outbound" {
                assert_eq!(message["delivery"]["status"], "sent", "{message}");
                let attempts = message["delivery"]["attempts"].as_u64().unwrap();
                assert!(
                    (1..=SCHEDULE_LEN as u64).contains(&attempts),
                    "{attempts} attempts"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_survive_an_app_answering_500_for_a_while() {
    replies_survive(Fault::ServerError).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_survive_an_app_answering_429_with_retry_after() {
    replies_survive(Fault::RateLimited).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_survive_an_app_that_hangs_past_the_send_timeout() {
    replies_survive(Fault::Hang).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_survive_an_app_that_refuses_connections() {
    replies_survive(Fault::Refuse).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_survive_an_app_that_answers_200_with_an_error_body() {
    replies_survive(Fault::ErrorBody).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_to_a_slow_app_go_out_once_each_in_order() {
    let app = App::start().await;
    app.set(Fault::Slow).await;
    let bridge = TestApp::spawn_with(Options {
        outbound_url: Some(app.url()),
        timeout_ms: 2000,
        ..Options::default()
    })
    .await;
    let event = text_event("in-1", "user-1", "hello");
    assert_eq!(bridge.post_webhook("demo", &event).await.status(), 200);
    let conversation = bridge.only_conversation().await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut queued = Vec::new();
    for n in 0..4 {
        let (_, reply) = bridge.reply(&conversation, &format!("slow {n}")).await;
        queued.push(reply["id"].as_str().unwrap().to_owned());
    }
    bridge.drain_outbox().await;
    assert_eq!(app.taken()[&conversation], queued);
    assert_eq!(
        app.attempts(),
        4,
        "a slow answer within the timeout is not retried"
    );
}
