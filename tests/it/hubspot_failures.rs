//! HubSpot mode, publishing in when HubSpot fails or pushes back (issue #18): `429` waits
//! for `Retry-After`, a burst over the documented limit queues in the client instead of
//! failing, `401` refreshes the OAuth token once, other `4xx` dead-letter with HubSpot's
//! own message (listed and redriven like any delivery), `5xx` retries on the delivery
//! schedule, and one conversation's messages stay in order with one publish in flight.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{ADMIN_TOKEN, Options, TestApp, items, secret, wait_until};
use crate::support::hubspot_fake::{self, HubspotFake, Recorded};

/// A generic channel `hs` linked to the fake's account; `hubspot` is the `[hubspot]`
/// section and `schedule` the delivery retry schedule.
fn options(hubspot: String, schedule: Vec<u64>) -> Options {
    Options {
        retry_schedule_ms: schedule,
        extra: format!(
            "[channels.hs]\nkind = \"generic\"\nname = \"Support app\"\nsecret = \"{}\"\n\
             outbound_url = \"https://app.example.test/outbound\"\n\
             hubspot = {{ channel_account_id = \"{}\" }}\n\n{hubspot}",
            secret(),
            hubspot_fake::CHANNEL_ACCOUNT_ID,
        ),
        ..Options::default()
    }
}

async fn say(app: &TestApp, id: &str, user: &str, text: &str) {
    let event = json!({"type": "message", "id": id, "from": {"id": user},
                       "parts": [{"type": "text", "text": text}]});
    let response = app.post_webhook("hs", &event).await;
    assert_eq!(response.status(), 200);
}

async fn published(fake: &HubspotFake, n: usize, within: Duration) -> Vec<Value> {
    wait_until(&format!("{n} messages are published"), within, || async {
        fake.messages().len() >= n
    })
    .await;
    fake.messages()
}

/// Every publish request the fake got (answered or refused), oldest first.
fn publish_requests(fake: &HubspotFake) -> Vec<Recorded> {
    fake.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/messages"))
        .collect()
}

fn texts(messages: &[Value]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect()
}

async fn dead(app: &TestApp) -> Vec<Value> {
    items(app.get("/api/v1/deliveries?state=dead").await)
}

fn hubspot_error(message: &str, category: &str) -> Value {
    json!({"status": "error", "message": message, "category": category,
           "correlationId": "6b1c6ad7-2ac4-4c1b-9d4a-5b2c6e1f0a11"})
}

#[tokio::test]
async fn a_429_waits_for_retry_after_then_the_message_is_published() {
    let fake = HubspotFake::start().await;
    let app = TestApp::spawn_with(options(fake.config_section(""), vec![0, 50, 100, 200])).await;
    fake.fail_next(
        "/messages",
        429,
        &[("retry-after", "1")],
        hubspot_error(
            "You have reached your ten_secondly_rolling limit.",
            "RATE_LIMITS",
        ),
        1,
    );
    say(&app, "m-1", "u-1", "hello").await;
    published(&fake, 1, Duration::from_secs(20)).await;

    let attempts = publish_requests(&fake);
    assert_eq!(attempts.len(), 2, "refused once, then published");
    let waited = attempts[1].at - attempts[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "the retry came {waited:?} after the 429 that asked for 1 s"
    );
    assert!(dead(&app).await.is_empty());
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_burst_over_hubspots_limit_queues_and_never_meets_a_429() {
    let fake = HubspotFake::start().await;
    // HubSpot's documented limit for public apps, enforced by the fake: any request over
    // it is answered 429 and recorded as a violation.
    fake.enforce_limit(110, Duration::from_secs(10));
    let app = TestApp::spawn_with(options(fake.config_section(""), vec![0, 50, 100, 200])).await;
    let burst = 118;
    for i in 0..burst {
        say(
            &app,
            &format!("m-{i}"),
            &format!("u-{}", i % 30),
            &format!("message {i}"),
        )
        .await;
    }
    let messages = published(&fake, burst, Duration::from_secs(40)).await;
    assert_eq!(messages.len(), burst);

    let attempts = publish_requests(&fake);
    assert_eq!(
        attempts.len(),
        burst,
        "each message published at the first try"
    );
    let spread = attempts[burst - 1].at - attempts[0].at;
    assert!(
        spread >= Duration::from_secs(10),
        "the last {} waited for the window: {spread:?}",
        burst - 110
    );
    app.drain_outbox().await;
    assert!(dead(&app).await.is_empty());
    fake.assert_no_violations();
}

#[tokio::test]
async fn an_expired_oauth_token_is_refreshed_once_and_the_publish_sent_again() {
    let fake = HubspotFake::start().await;
    let app = TestApp::spawn_with(options(
        fake.oauth_config_section(""),
        vec![0, 50, 100, 200],
    ))
    .await;
    say(&app, "m-1", "u-1", "first").await;
    published(&fake, 1, Duration::from_secs(20)).await;
    assert_eq!(fake.tokens_issued(), 1);

    fake.expire_tokens();
    say(&app, "m-2", "u-1", "second").await;
    let messages = published(&fake, 2, Duration::from_secs(20)).await;
    assert_eq!(texts(&messages), ["first", "second"]);
    assert_eq!(fake.tokens_issued(), 2, "one refresh");
    assert_eq!(
        publish_requests(&fake).len(),
        3,
        "the 401'd publish, sent again once"
    );

    // A token refused again right after its refresh is not refreshed in a loop: the
    // publish is dead-lettered with HubSpot's message.
    fake.fail_next(
        "/messages",
        401,
        &[],
        hubspot_error(
            "The OAuth token used to make this call expired",
            "EXPIRED_AUTHENTICATION",
        ),
        2,
    );
    say(&app, "m-3", "u-1", "third").await;
    wait_until(
        "the publish is dead-lettered",
        Duration::from_secs(20),
        || async { !dead(&app).await.is_empty() },
    )
    .await;
    assert_eq!(fake.tokens_issued(), 3, "one more refresh, not more");
    assert_eq!(publish_requests(&fake).len(), 5);
    let error = dead(&app).await[0]["last_error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("HTTP 401"), "{error}");
    assert!(
        !error.contains("hs-oauth-token"),
        "no token in errors: {error}"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_refused_publish_is_dead_lettered_with_hubspots_message_listed_and_redriven() {
    let fake = HubspotFake::start().await;
    let app = TestApp::spawn_with(options(fake.config_section(""), vec![0, 50, 100, 200])).await;
    fake.fail_next(
        "/messages",
        400,
        &[],
        hubspot_error(
            "Channel account 2002 is not authorized to publish messages",
            "VALIDATION_ERROR",
        ),
        1,
    );
    say(&app, "m-1", "u-1", "lost in HubSpot?").await;
    wait_until(
        "the publish is dead-lettered",
        Duration::from_secs(20),
        || async { !dead(&app).await.is_empty() },
    )
    .await;
    assert_eq!(publish_requests(&fake).len(), 1, "a 400 is not tried again");
    let conversation = app.only_conversation().await;
    let ours = app.messages(conversation["id"].as_str().unwrap()).await;
    let letter = dead(&app).await.remove(0);
    assert_eq!(letter["kind"], "hubspot_publish");
    assert_eq!(letter["channel_id"], "@hubspot");
    assert_eq!(letter["message_id"], ours[0]["id"]);
    assert_eq!(letter["conversation_id"], conversation["id"]);
    assert_eq!(letter["attempts"], 1);
    let error = letter["last_error"].as_str().unwrap();
    assert!(
        error.contains("HTTP 400")
            && error.contains("Channel account 2002 is not authorized to publish messages"),
        "{error}"
    );

    // The operator fixed it in HubSpot and redrives it like any delivery.
    let (status, queued) = app
        .api(
            Method::POST,
            &format!(
                "/api/v1/deliveries/{}/retry",
                letter["id"].as_str().unwrap()
            ),
            None,
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{queued}");
    assert_eq!(queued["state"], "pending");
    let messages = published(&fake, 1, Duration::from_secs(20)).await;
    assert_eq!(messages[0]["integrationIdempotencyId"], ours[0]["id"]);
    app.drain_outbox().await;
    assert!(dead(&app).await.is_empty());
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_5xx_is_retried_on_the_delivery_schedule_and_dead_lettered_when_it_runs_out() {
    let fake = HubspotFake::start().await;
    let app = TestApp::spawn_with(options(fake.config_section(""), vec![0, 300, 600])).await;
    fake.fail_next(
        "/messages",
        503,
        &[],
        hubspot_error("Service unavailable", "SERVICE_UNAVAILABLE"),
        2,
    );
    say(&app, "m-1", "u-1", "hello").await;
    published(&fake, 1, Duration::from_secs(20)).await;
    let attempts = publish_requests(&fake);
    assert_eq!(attempts.len(), 3);
    let (first, second) = (
        attempts[1].at - attempts[0].at,
        attempts[2].at - attempts[1].at,
    );
    // 300 ms and 600 ms, each ±20 % jitter.
    assert!(first >= Duration::from_millis(240), "{first:?}");
    assert!(second >= Duration::from_millis(480), "{second:?}");

    fake.fail_next(
        "/messages",
        502,
        &[],
        hubspot_error("Bad gateway", "BAD_GATEWAY"),
        3,
    );
    say(&app, "m-2", "u-2", "again").await;
    wait_until(
        "the publish is dead-lettered",
        Duration::from_secs(20),
        || async { !dead(&app).await.is_empty() },
    )
    .await;
    let letter = dead(&app).await.remove(0);
    assert_eq!(
        letter["attempts"], 3,
        "every step of the schedule was tried"
    );
    assert!(
        letter["last_error"]
            .as_str()
            .unwrap()
            .contains("HubSpot HTTP 502: Bad gateway"),
        "{letter}"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn one_conversations_messages_are_published_in_order_across_retries_one_at_a_time() {
    let fake = HubspotFake::start().await;
    // Each publish takes a while at HubSpot: a second one of the same conversation sent
    // meanwhile would be seen in flight (a violation).
    fake.delay_publishes(Duration::from_millis(30));
    let app =
        TestApp::spawn_with(options(fake.config_section(""), vec![0, 1000, 1000, 1000])).await;
    fake.fail_next(
        "/messages",
        503,
        &[],
        hubspot_error("Service unavailable", "SERVICE_UNAVAILABLE"),
        1,
    );
    for i in 0..5 {
        say(&app, &format!("a-{i}"), "ana", &format!("ana {i}")).await;
    }
    for i in 0..3 {
        say(&app, &format!("b-{i}"), "bo", &format!("bo {i}")).await;
    }
    let messages = published(&fake, 8, Duration::from_secs(20)).await;
    let thread = |who: &str| -> Vec<String> {
        messages
            .iter()
            .filter(|m| m["text"].as_str().unwrap().starts_with(who))
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(thread("ana"), ["ana 0", "ana 1", "ana 2", "ana 3", "ana 4"]);
    assert_eq!(thread("bo"), ["bo 0", "bo 1", "bo 2"]);
    // Ana's first message waited out its retry; Bo's conversation did not wait for it.
    let first_bo = messages.iter().position(|m| m["text"] == "bo 0").unwrap();
    let first_ana = messages.iter().position(|m| m["text"] == "ana 0").unwrap();
    assert!(first_bo < first_ana, "{:?}", texts(&messages));
    assert_eq!(publish_requests(&fake).len(), 9);
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_request_holds_its_place_under_the_limit_until_hubspot_has_answered_it() {
    let fake = HubspotFake::start().await;
    // HubSpot counts a request when it gets it: the first five take 400 ms to get there
    // and are counted then, the next five go fast.
    fake.enforce_limit(5, Duration::from_secs(1));
    fake.delay_publishes(Duration::from_millis(400));
    let app = TestApp::spawn_with(options(
        fake.config_section("rate_limit_requests = 5\nrate_limit_window_ms = 1000"),
        vec![0, 50, 100, 200],
    ))
    .await;
    for i in 0..5 {
        say(&app, &format!("m-{i}"), &format!("u-{i}"), "slow").await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    fake.delay_publishes(Duration::ZERO);
    for i in 5..10 {
        say(&app, &format!("m-{i}"), &format!("u-{i}"), "fast").await;
    }
    published(&fake, 10, Duration::from_secs(20)).await;
    assert_eq!(publish_requests(&fake).len(), 10, "no request was refused");
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_file_the_platform_keeps_failing_to_give_is_left_out_on_the_last_attempt_not_the_message()
{
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    let fake = HubspotFake::start().await;
    let mut opts = options(fake.config_section(""), vec![0, 50, 100]);
    opts.extra = opts.extra.replace(
        "outbound_url = \"https://app.example.test/outbound\"\n",
        "outbound_url = \"https://app.example.test/outbound\"\nmedia_allow_private = true\n",
    );
    let app = TestApp::spawn_with(opts).await;
    Mock::given(method("GET"))
        .and(path("/media/photo.jpg"))
        .respond_with(ResponseTemplate::new(503))
        .expect(3)
        .mount(&app.receiver)
        .await;
    let event = json!({"type": "message", "id": "m-1", "from": {"id": "u-1"},
        "parts": [{"type": "text", "text": "see the photo"},
                  {"type": "image", "media": {"url": format!("{}/media/photo.jpg", app.receiver.uri())}}]});
    assert_eq!(app.post_webhook("hs", &event).await.status(), 200);
    let m = published(&fake, 1, Duration::from_secs(20)).await.remove(0);
    assert_eq!(m["attachments"], json!([{"type": "UNSUPPORTED_CONTENT"}]));
    let text = m["text"].as_str().unwrap();
    assert!(
        text.starts_with("see the photo\n[image]\n([image] could not be attached: the platform still failed after every retry"),
        "{text}"
    );
    assert!(fake.uploads().is_empty());
    app.drain_outbox().await;
    assert!(dead(&app).await.is_empty());
    fake.assert_no_violations();
}
