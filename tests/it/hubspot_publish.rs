//! HubSpot mode, publishing in (issue #18): every inbound message of a linked channel is
//! published into HubSpot through the outbox, against a fake that checks each request
//! against HubSpot's specs (tests/support/hubspot_fake.rs).

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Options, TestApp, items, secret, wait_until};
use crate::support::hubspot_fake::{self, HubspotFake};

/// A generic channel `hs` linked to the fake's channel account, plus `extra` TOML.
fn linked_options(fake: &HubspotFake, hubspot_extra: &str, extra: &str) -> Options {
    Options {
        extra: format!(
            "[channels.hs]\nkind = \"generic\"\nname = \"Support app\"\nsecret = \"{}\"\n\
             outbound_url = \"{}/hs-outbound\"\nmedia_allow_private = true\n\
             hubspot = {{ channel_account_id = \"{}\" }}\n\n{}\n{extra}",
            secret(),
            fake.url,
            hubspot_fake::CHANNEL_ACCOUNT_ID,
            fake.config_section(hubspot_extra),
        ),
        ..Options::default()
    }
}

/// Waits until the fake holds `n` published messages.
async fn published(fake: &HubspotFake, n: usize) -> Vec<Value> {
    wait_until(
        &format!("{n} messages are published"),
        Duration::from_secs(20),
        || async { fake.messages().len() >= n },
    )
    .await;
    fake.messages()
}

#[tokio::test]
async fn a_text_message_is_published_with_its_thread_idempotency_id_and_sender() {
    let fake = HubspotFake::start().await;
    let app = TestApp::spawn_with(linked_options(&fake, "", "")).await;
    let event = json!({
        "type": "message", "id": "m-1", "timestamp": "2026-11-21T10:00:00Z",
        "from": {"id": "u-7", "name": "Ana Lima", "email": "ana@example.com"},
        "parts": [{"type": "text", "text": "Where is <my> order?"}]
    });
    assert_eq!(app.post_webhook("hs", &event).await.status(), 200);
    let messages = published(&fake, 1).await;
    let m = &messages[0];
    let conversation = app.only_conversation().await;
    let ours = app.messages(conversation["id"].as_str().unwrap()).await;
    assert_eq!(m["messageDirection"], "INCOMING");
    assert_eq!(m["channelAccountId"], hubspot_fake::CHANNEL_ACCOUNT_ID);
    assert_eq!(m["text"], "Where is <my> order?");
    assert_eq!(m["richText"], "<p>Where is &lt;my&gt; order?</p>");
    assert_eq!(m["integrationThreadId"], conversation["id"]);
    assert_eq!(m["integrationIdempotencyId"], ours[0]["id"]);
    assert_eq!(m["timestamp"], "2026-11-21T10:00:00.000Z");
    assert_eq!(m["senders"][0]["name"], "Ana Lima");
    assert_eq!(
        m["senders"][0]["deliveryIdentifier"],
        json!({"type": "CHANNEL_SPECIFIC_OPAQUE_ID", "value": "u-7"})
    );
    assert_eq!(m["recipients"][0]["name"], "Support app");
    assert_eq!(m["attachments"], json!([]));
    fake.assert_no_violations();
    app.drain_outbox().await;
    let pending = items(app.get("/api/v1/deliveries?state=pending").await);
    assert!(pending.is_empty(), "{pending:?}");
}
