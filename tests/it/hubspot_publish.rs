//! HubSpot mode, publishing in (issue #18): every inbound message of a linked channel is
//! published into HubSpot through the outbox, against a fake that checks each request
//! against HubSpot's specs (tests/support/hubspot_fake.rs).

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

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

/// Serves `bytes` as `mime` at `path` on the app's receiver (the generic app's media host).
async fn serve(app: &TestApp, at: &str, bytes: &[u8], mime: &str) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(200).set_body_raw(bytes.to_vec(), mime))
        .mount(&app.receiver)
        .await;
}

/// Posts a generic message event; expects it stored.
async fn post_message(app: &TestApp, event: Value) {
    let response = app.post_webhook("hs", &event).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
}

fn media_part(app: &TestApp, kind: &str, file: &str, mime: &str) -> Value {
    json!({"type": kind, "media": {"url": format!("{}/media/{file}", app.receiver.uri()),
                                   "mime_type": mime}})
}

#[tokio::test]
async fn every_part_kind_maps_to_its_hubspot_attachment_and_media_goes_through_the_files_api() {
    let fake = HubspotFake::start().await;
    let app = TestApp::spawn_with(linked_options(&fake, "", "")).await;
    let files: [(&str, &str, &str, &[u8]); 6] = [
        ("image", "photo.png", "image/png", b"\x89PNG-photo"),
        ("video", "clip.mp4", "video/mp4", b"mp4-clip"),
        ("audio", "song.mp3", "audio/mpeg", b"ID3-song"),
        ("voice_note", "voice.ogg", "audio/ogg", b"OggS-voice"),
        ("sticker", "sticker.webp", "image/webp", b"RIFF-sticker"),
        ("file", "invoice.pdf", "application/pdf", b"%PDF-invoice"),
    ];
    let mut parts = vec![json!({"type": "text", "text": "Everything I have:"})];
    for (kind, file, mime, bytes) in files {
        serve(&app, &format!("/media/{file}"), bytes, mime).await;
        parts.push(media_part(&app, kind, file, mime));
    }
    parts.push(
        json!({"type": "location", "latitude": 38.7223, "longitude": -9.1393,
                      "name": "Shop", "address": "Rua Augusta 1, Lisboa"}),
    );
    parts.push(
        json!({"type": "contact", "name": "Rui Costa", "phones": ["+351912345678"],
                      "emails": ["rui@example.com"]}),
    );
    parts.push(json!({"type": "unsupported", "platform_type": "poll"}));
    post_message(
        &app,
        json!({"type": "message", "id": "m-all", "from": {"id": "u-7", "name": "Ana"},
               "parts": parts}),
    )
    .await;

    let m = published(&fake, 1).await.remove(0);
    let uploads = fake.uploads();
    assert_eq!(uploads.len(), 6, "one upload per media part");
    for ((_, file, mime, bytes), upload) in files.iter().zip(&uploads) {
        assert_eq!(upload.bytes, *bytes, "{file}: the platform's bytes");
        assert_eq!(upload.content_type, *mime, "{file}");
        assert_eq!(upload.options["access"], "PRIVATE", "{file}");
        assert_eq!(upload.folder_path.as_deref(), Some("/channel-bridge"));
    }
    let file = |i: usize, usage: &str| json!({"type": "FILE", "fileId": uploads[i].id, "fileUsageType": usage});
    assert_eq!(
        m["attachments"],
        json!([
            file(0, "IMAGE"),
            file(1, "OTHER"),
            file(2, "AUDIO"),
            file(3, "VOICE_RECORDING"),
            file(4, "STICKER"),
            file(5, "OTHER"),
            {"type": "LOCATION", "latitude": 38.7223, "longitude": -9.1393, "name": "Shop",
             "address": "Rua Augusta 1, Lisboa"},
            {"type": "CONTACT", "contactProfile": {
                "addresses": [], "emails": [{"email": "rui@example.com"}],
                "phones": [{"phone": "+351912345678"}], "urls": [],
                "name": {"firstName": "Rui", "lastName": "Costa"}}},
            {"type": "UNSUPPORTED_CONTENT"}
        ])
    );
    assert_eq!(
        m["text"],
        "Everything I have:\n[location: Shop]\n[contact: Rui Costa]\n[poll not supported]"
    );
    assert_eq!(
        m["richText"],
        "<p>Everything I have:</p><p>[location: Shop]</p><p>[contact: Rui Costa]</p><p>[poll not supported]</p>"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_quoted_message_is_published_with_in_reply_to_id_of_the_quoted_ones_hubspot_id() {
    let fake = HubspotFake::start().await;
    let app = TestApp::spawn_with(linked_options(&fake, "", "")).await;
    post_message(
        &app,
        json!({"type": "message", "id": "m-1", "from": {"id": "u-7"},
               "parts": [{"type": "text", "text": "My order is late"}]}),
    )
    .await;
    post_message(
        &app,
        json!({"type": "message", "id": "m-2", "from": {"id": "u-7"}, "reply_to": "m-1",
               "parts": [{"type": "text", "text": "^ this one, #991"}]}),
    )
    .await;
    let messages = published(&fake, 2).await;
    assert_eq!(messages[0]["text"], "My order is late");
    assert!(messages[0].get("inReplyToId").is_none(), "{}", messages[0]);
    assert_eq!(messages[1]["inReplyToId"], messages[0]["id"]);
    assert_eq!(
        messages[1]["integrationThreadId"],
        messages[0]["integrationThreadId"]
    );
    assert_eq!(
        messages[1]["conversationsThreadId"], messages[0]["conversationsThreadId"],
        "one HubSpot thread per conversation"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_caption_is_the_text_and_a_file_the_platform_lost_is_named_not_attached() {
    let fake = HubspotFake::start().await;
    let app = TestApp::spawn_with(linked_options(&fake, "", "")).await;
    serve(&app, "/media/dent.jpg", b"\xff\xd8dent", "image/jpeg").await;
    Mock::given(method("GET"))
        .and(path("/media/gone.pdf"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&app.receiver)
        .await;
    let mut image = media_part(&app, "image", "dent.jpg", "image/jpeg");
    image["caption"] = json!("The dent\non the lid");
    let gone = media_part(&app, "file", "gone.pdf", "application/pdf");
    post_message(
        &app,
        json!({"type": "message", "id": "m-1", "from": {"id": "u-7"}, "parts": [image, gone]}),
    )
    .await;
    let m = published(&fake, 1).await.remove(0);
    assert_eq!(fake.uploads().len(), 1);
    assert_eq!(m["attachments"][0]["fileUsageType"], "IMAGE");
    assert_eq!(m["attachments"][1], json!({"type": "UNSUPPORTED_CONTENT"}));
    let text = m["text"].as_str().unwrap();
    assert!(
        text.starts_with("The dent\non the lid\n[file]\n([file] could not be attached: "),
        "{text}"
    );
    assert!(
        m["richText"]
            .as_str()
            .unwrap()
            .starts_with("<p>The dent</p><p>on the lid</p>"),
        "{m}"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn an_edit_and_an_unsend_are_published_as_notes_in_reply_to_the_message() {
    let fake = HubspotFake::start().await;
    let app = TestApp::spawn_with(linked_options(&fake, "", "")).await;
    post_message(
        &app,
        json!({"type": "message", "id": "m-1", "timestamp": "2026-11-21T10:00:00Z",
               "from": {"id": "u-7"}, "parts": [{"type": "text", "text": "Order #991"}]}),
    )
    .await;
    let original = published(&fake, 1).await.remove(0);
    post_message(
        &app,
        json!({"type": "edit", "id": "m-1", "timestamp": "2026-11-21T10:01:00Z",
               "parts": [{"type": "text", "text": "Order #992 <not 991>"}]}),
    )
    .await;
    post_message(&app, json!({"type": "retract", "id": "m-1"})).await;
    // Told twice (a platform redelivering): one note.
    post_message(&app, json!({"type": "retract", "id": "m-1"})).await;

    let messages = published(&fake, 3).await;
    app.drain_outbox().await;
    assert_eq!(fake.messages().len(), 3, "{:#?}", fake.messages());
    let ours = original["integrationIdempotencyId"].as_str().unwrap();
    let (edited, deleted) = (&messages[1], &messages[2]);
    assert_eq!(edited["text"], "edited: Order #992 <not 991>");
    assert_eq!(
        edited["richText"],
        "<p>edited: Order #992 &lt;not 991&gt;</p>"
    );
    assert_eq!(edited["inReplyToId"], original["id"]);
    assert_eq!(
        edited["integrationIdempotencyId"],
        format!("{ours}:edited-1")
    );
    assert_eq!(deleted["text"], "message deleted by the contact");
    assert_eq!(deleted["inReplyToId"], original["id"]);
    assert_eq!(
        deleted["integrationIdempotencyId"],
        format!("{ours}:retracted")
    );
    for note in [edited, deleted] {
        assert_eq!(note["integrationThreadId"], original["integrationThreadId"]);
        assert_eq!(note["senders"], original["senders"]);
        assert_eq!(note["attachments"], json!([]));
        assert_eq!(note["messageDirection"], "INCOMING");
    }
    fake.assert_no_violations();
}
