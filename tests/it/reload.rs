//! Hot reload: channels switch on and off, appear and rotate secrets with no restart and
//! nothing lost; an invalid config is refused while the old one keeps serving.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::harness::{TestApp, items, secret, text_event, wait_until};

async fn accept_deliveries(app: &TestApp) {
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "ok"})))
        .mount(&app.receiver)
        .await;
}

#[tokio::test]
async fn a_disabled_channel_answers_503_and_holds_its_deliveries_until_enabled_again() {
    let app = TestApp::spawn().await;
    accept_deliveries(&app).await;
    app.post_webhook("demo", &text_event("m1", "ana", "hi"))
        .await;
    let conversation = app.only_conversation().await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut options = app.options.clone();
    options.demo_enabled = false;
    app.write_config(&options);
    app.reload().await;
    let refused = app
        .post_webhook("demo", &text_event("m2", "ana", "are you there?"))
        .await;
    assert_eq!(refused.status(), 503);

    for i in 0..5 {
        let (status, _) = app.reply(&conversation, &format!("held {i}")).await;
        assert_eq!(
            status, 202,
            "replies are still taken while the channel is off"
        );
    }
    // Give the worker every chance to send what it must not.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        app.delivered().await.is_empty(),
        "a disabled channel sent a reply"
    );
    let pending = items(app.get("/api/v1/deliveries?state=pending").await);
    assert_eq!(pending.len(), 5);
    assert!(
        pending.iter().all(|d| d["attempts"] == 0),
        "held, not failed: {pending:?}"
    );

    options.demo_enabled = true;
    app.write_config(&options);
    app.reload().await;
    app.drain_outbox().await;
    let texts: Vec<String> = app
        .delivered()
        .await
        .iter()
        .map(|b| b["parts"][0]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["held 0", "held 1", "held 2", "held 3", "held 4"]);
    assert_eq!(
        app.post_webhook("demo", &text_event("m2", "ana", "again"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn an_invalid_config_is_refused_and_the_running_one_keeps_serving() {
    let app = TestApp::spawn().await;
    std::fs::write(&app.config_path, "this is = not [valid toml").unwrap();
    app.reload().await;

    let ready = app.get("/readyz").await;
    assert_eq!(
        ready["status"], "ready",
        "a refused reload does not make the daemon unready"
    );
    assert_eq!(ready["config"]["last_result"], "error");
    assert!(
        ready["config"]["error"]
            .as_str()
            .unwrap()
            .contains("invalid TOML")
    );
    assert_eq!(
        app.post_webhook("demo", &text_event("m1", "ana", "hi"))
            .await
            .status(),
        200
    );
    let channels = app.get("/api/v1/channels").await;
    assert_eq!(channels["config"]["last_result"], "error");

    // A config that parses but breaks a rule is refused the same way, naming the key.
    let mut options = app.options.clone();
    options.outbound_url = Some("not a url".into());
    app.write_config(&options);
    app.reload().await;
    let ready = app.get("/readyz").await;
    assert!(
        ready["config"]["error"]
            .as_str()
            .unwrap()
            .contains("channels.demo.outbound_url")
    );

    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(r#"channel_bridge_config_reload_total{result="error"}"#));
}

#[tokio::test]
async fn a_channel_added_by_reload_receives_webhooks_without_a_restart() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.post_webhook("fresh", &text_event("m1", "ana", "hi"))
            .await
            .status(),
        404
    );
    let mut options = app.options.clone();
    options.extra = format!(
        "[channels.fresh]\nkind = \"generic\"\nsecret = \"{}\"\noutbound_url = \"http://127.0.0.1:9/x\"\n",
        secret()
    );
    app.write_config(&options);
    app.reload().await;
    assert_eq!(
        app.post_webhook("fresh", &text_event("m1", "ana", "hi"))
            .await
            .status(),
        200
    );
    let channels = items(app.get("/api/v1/channels").await);
    assert!(channels.iter().any(|c| c["id"] == "fresh"));
}

#[tokio::test]
async fn an_old_secret_still_verifies_during_the_overlap_window_after_rotation() {
    let app = TestApp::spawn().await;
    let new_secret = "whsec_cm90YXRlZC1zZWNyZXQtZm9yLXRoZS10ZXN0cw==";
    let mut options = app.options.clone();
    options.demo_secret = Some(new_secret.into());
    app.write_config(&options);
    app.reload().await;

    let body = |id: &str| text_event(id, "ana", "hi").to_string().into_bytes();
    let old = app
        .post_signed_with(&secret(), "demo", body("m1"), "application/json", 0)
        .await;
    assert_eq!(
        old.status(),
        200,
        "a retry signed before the rotation is accepted"
    );
    let new = app
        .post_signed_with(new_secret, "demo", body("m2"), "application/json", 0)
        .await;
    assert_eq!(new.status(), 200);

    // With no overlap, the old secret stops working at once.
    options.demo_secret = None;
    options.extra = "[reload]\nsecret_overlap_s = 0\n".into();
    app.write_config(&options);
    app.reload().await;
    let stale = app
        .post_signed_with(new_secret, "demo", body("m3"), "application/json", 0)
        .await;
    assert_eq!(stale.status(), 401);
}

#[tokio::test]
async fn only_channels_whose_settings_changed_get_a_new_adapter() {
    let app = TestApp::spawn().await;
    let before = app.runtime.load_full();
    let mut options = app.options.clone();
    options.reopen = false;
    app.write_config(&options);
    app.reload().await;
    let after = app.runtime.load_full();
    let adapter = |runtime: &channel_bridge::runtime::Runtime, id: &str| {
        runtime.channel(id).unwrap().adapter.clone()
    };
    assert!(
        Arc::ptr_eq(&adapter(&before, "off"), &adapter(&after, "off")),
        "untouched channel kept"
    );
    assert!(
        !Arc::ptr_eq(&adapter(&before, "demo"), &adapter(&after, "demo")),
        "changed channel rebuilt"
    );
    assert!(!after.channel("demo").unwrap().config.reopen);
}

#[tokio::test]
async fn settings_bound_at_start_keep_their_value_and_say_a_restart_is_needed() {
    let app = TestApp::spawn().await;
    let mut options = app.options.clone();
    options.listen = "127.0.0.1:1".into();
    options.reopen = false;
    app.write_config(&options);
    app.reload().await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready["config"]["last_result"], "ok");
    assert_eq!(
        ready["config"]["restart_required"],
        json!(["server.listen"])
    );
    assert_eq!(
        app.runtime.load().config.server.listen.to_string(),
        "127.0.0.1:0",
        "the running value stays"
    );
    assert!(
        !app.runtime.load().channel("demo").unwrap().config.reopen,
        "the rest applied"
    );
}

#[tokio::test]
async fn editing_the_config_file_is_enough_to_reload_it() {
    let app = TestApp::spawn().await;
    let mut options = app.options.clone();
    options.demo_enabled = false;
    app.write_config(&options);
    wait_until(
        "the file watcher applied the change",
        Duration::from_secs(10),
        || async {
            app.post_webhook("demo", &text_event("m1", "ana", "hi"))
                .await
                .status()
                == 503
        },
    )
    .await;
}

/// A generic channel `shop` sending to the receiver's `/shop`.
fn shop_channel(app: &TestApp) -> String {
    format!(
        "[channels.shop]\nkind = \"generic\"\nsecret = \"{}\"\noutbound_url = \"{}/shop\"\n",
        secret(),
        app.receiver.uri()
    )
}

#[tokio::test]
async fn a_channel_removed_by_reload_answers_503_and_holds_its_replies_until_added_back() {
    let app = TestApp::spawn().await;
    accept_deliveries(&app).await;
    Mock::given(method("POST"))
        .and(path("/shop"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "ok"})))
        .mount(&app.receiver)
        .await;
    let mut options = app.options.clone();
    options.extra = shop_channel(&app);
    app.write_config(&options);
    app.reload().await;
    assert_eq!(
        app.post_webhook("shop", &text_event("m1", "ana", "hi"))
            .await
            .status(),
        200
    );
    let conversation = app.only_conversation().await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let without_shop = app.options.clone();
    app.write_config(&without_shop);
    app.reload().await;
    let refused = app
        .post_webhook("shop", &text_event("m2", "ana", "still there?"))
        .await;
    assert_eq!(refused.status(), 503, "404 would tell the platform to stop");
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "channel_removed");

    let (status, _) = app.reply(&conversation, "held while removed").await;
    assert_eq!(status, 202);
    // A reply on a channel that still exists goes out: the worker ran past the held one.
    app.post_webhook("demo", &text_event("d1", "bo", "hello"))
        .await;
    let demo = app
        .conversations()
        .await
        .into_iter()
        .find(|c| c["channel_id"] == "demo")
        .unwrap();
    app.reply(demo["id"].as_str().unwrap(), "sent").await;
    wait_until(
        "the demo reply is sent and recorded",
        Duration::from_secs(10),
        || async {
            let pending = items(app.get("/api/v1/deliveries?state=pending").await);
            !app.delivered().await.is_empty() && pending.iter().all(|d| d["channel_id"] != "demo")
        },
    )
    .await;
    let pending = items(app.get("/api/v1/deliveries?state=pending").await);
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["channel_id"], "shop");
    assert_eq!(pending[0]["attempts"], 0, "held, not failed");

    app.write_config(&options);
    app.reload().await;
    app.drain_outbox().await;
    let sent: Vec<String> = app
        .receiver
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/shop")
        .map(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            body["parts"][0]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(sent, ["held while removed"]);
    assert_eq!(
        app.post_webhook("shop", &text_event("m2", "ana", "still there?"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_channel_removed_longer_ago_than_the_grace_period_answers_404() {
    let app = TestApp::spawn().await;
    let mut options = app.options.clone();
    options.extra = format!(
        "{}\n[reload]\nremoved_channel_grace_s = 0\n",
        shop_channel(&app)
    );
    app.write_config(&options);
    app.reload().await;
    options.extra = "[reload]\nremoved_channel_grace_s = 0\n".into();
    app.write_config(&options);
    app.reload().await;
    let refused = app
        .post_webhook("shop", &text_event("m1", "ana", "hi"))
        .await;
    assert_eq!(refused.status(), 404);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_channel");
}

#[tokio::test]
async fn a_reply_to_a_disabled_channel_answers_202_saying_it_waits_for_the_channel() {
    let app = TestApp::spawn().await;
    accept_deliveries(&app).await;
    app.post_webhook("demo", &text_event("m1", "ana", "hi"))
        .await;
    let conversation = app.only_conversation().await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, sent) = app.reply(&conversation, "on its way").await;
    assert_eq!(status, 202);
    assert_eq!(sent["waiting_for_channel"], false, "{sent}");
    assert_eq!(
        sent["parts"][0]["text"], "on its way",
        "still the message: {sent}"
    );

    let mut options = app.options.clone();
    options.demo_enabled = false;
    app.write_config(&options);
    app.reload().await;
    let (status, held) = app.reply(&conversation, "held").await;
    assert_eq!(status, 202);
    assert_eq!(held["waiting_for_channel"], true, "{held}");
    assert_eq!(held["channel_id"], "demo", "{held}");
}
