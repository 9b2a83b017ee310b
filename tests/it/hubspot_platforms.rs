//! HubSpot mode, publishing in from every platform (issue #18): one real webhook fixture
//! per platform comes in through its signed webhook, its media is fetched from the
//! platform (wiremock, with the platform's credentials) and uploaded through the Files
//! API, and the message is published with the delivery identifier HubSpot expects:
//! phone numbers `HS_PHONE_NUMBER`, e-mail addresses `HS_EMAIL_ADDRESS`, anything else
//! `CHANNEL_SPECIFIC_OPAQUE_ID`. The fake checks every request against HubSpot's spec.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::harness::{Options, TestApp, secret, wait_until};
use crate::support::fixtures::fixture;
use crate::support::hubspot_fake::{self, HubspotFake};

/// The `hubspot = {…}` line linking a channel to the fake's channel account.
fn link() -> String {
    format!(
        "hubspot = {{ channel_account_id = \"{}\" }}\n",
        hubspot_fake::CHANNEL_ACCOUNT_ID
    )
}

/// The app with `channel` (a `[channels.X]` table, linked) and the fake's `[hubspot]`.
async fn spawn(fake: &HubspotFake, channel: &str) -> TestApp {
    TestApp::spawn_with(Options {
        extra: format!("{channel}{}\n{}", link(), fake.config_section("")),
        ..Options::default()
    })
    .await
}

async fn published(fake: &HubspotFake, n: usize) -> Vec<Value> {
    wait_until(
        &format!("{n} messages are published"),
        Duration::from_secs(20),
        || async { fake.messages().len() >= n },
    )
    .await;
    fake.messages()
}

/// Answers any GET with a few bytes typed by the path's extension (or `fallback`), as a
/// platform's file store does.
struct FileStore {
    fallback: &'static str,
}

impl Respond for FileStore {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let path = request.url.path();
        let mime = match path.rsplit('.').next().unwrap_or_default() {
            "jpg" | "jpeg" => "image/jpeg",
            "png" => "image/png",
            "mp4" => "video/mp4",
            "ogg" | "oga" => "audio/ogg",
            "pdf" => "application/pdf",
            _ => self.fallback,
        };
        ResponseTemplate::new(200).set_body_raw(format!("bytes of {path}").into_bytes(), mime)
    }
}

/// The sender's delivery identifier and the attachments' types, per published message.
fn summary(m: &Value) -> (Value, Vec<String>) {
    let attachments = m["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| match a["fileUsageType"].as_str() {
            Some(usage) => format!("FILE/{usage}"),
            None => a["type"].as_str().unwrap().to_owned(),
        })
        .collect();
    (m["senders"][0]["deliveryIdentifier"].clone(), attachments)
}

fn opaque(value: &str) -> Value {
    json!({"type": "CHANNEL_SPECIFIC_OPAQUE_ID", "value": value})
}

fn phone(value: &str) -> Value {
    json!({"type": "HS_PHONE_NUMBER", "value": value})
}

/// Every file a message's FILE attachments name was uploaded with the platform's bytes.
fn assert_files_uploaded(fake: &HubspotFake, m: &Value) {
    let uploads = fake.uploads();
    for a in m["attachments"].as_array().unwrap() {
        if a["type"] == "FILE" {
            let upload = uploads
                .iter()
                .find(|u| u.id == a["fileId"].as_str().unwrap())
                .expect("the file was uploaded");
            assert!(!upload.bytes.is_empty());
            assert_eq!(upload.options["access"], "PRIVATE");
        }
    }
}

fn hmac_hex(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn telegram_voice_is_fetched_through_getfile_and_published_as_a_voice_recording() {
    const TOKEN: &str = "123456:TEST-token_abc";
    const SECRET: &str = "tg-webhook-secret";
    let fake = HubspotFake::start().await;
    let telegram = MockServer::start().await;
    let app = spawn(
        &fake,
        &format!(
            "[channels.tg]\nkind = \"telegram\"\nbot_token = \"{TOKEN}\"\n\
             secret_token = \"{SECRET}\"\napi_base = \"{}\"\n",
            telegram.uri()
        ),
    )
    .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/getFile")))
        .and(body_json(json!({"file_id": "AwACAgQAAxkBAAIBVOICE"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "result": {"file_id": "AwACAgQAAxkBAAIBVOICE", "file_unique_id": "AgADvo",
                                   "file_size": 10240, "file_path": "voice/file_7.oga"}})))
        .expect(1)
        .mount(&telegram)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/file/bot{TOKEN}/voice/file_7.oga")))
        .respond_with(FileStore { fallback: "" })
        .expect(1)
        .mount(&telegram)
        .await;
    let response = app
        .http
        .post(app.url("/hooks/tg"))
        .header("content-type", "application/json")
        .header("x-telegram-bot-api-secret-token", SECRET)
        .body(fixture!("telegram/voice.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let m = published(&fake, 1).await.remove(0);
    assert_eq!(
        summary(&m),
        (opaque("5511223344"), vec!["FILE/VOICE_RECORDING".into()])
    );
    assert_eq!(m["senders"][0]["name"], "Amara");
    assert_eq!(m["text"], "[voice message]");
    assert_files_uploaded(&fake, &m);
    let upload = &fake.uploads()[0];
    assert_eq!(
        upload.bytes,
        b"bytes of /file/bot123456:TEST-token_abc/voice/file_7.oga"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn whatsapp_voice_is_fetched_with_the_token_and_the_sender_is_a_phone_number() {
    const TOKEN: &str = "EAAG-it-whatsapp-access-token";
    const APP_SECRET: &str = "it-whatsapp-app-secret";
    let fake = HubspotFake::start().await;
    let graph = MockServer::start().await;
    let app = spawn(
        &fake,
        &format!(
            "[channels.wa]\nkind = \"whatsapp\"\naccess_token = \"{TOKEN}\"\n\
             app_secret = \"{APP_SECRET}\"\nverify_token = \"verify\"\n\
             phone_number_id = \"227118690421377\"\napi_base = \"{}/v26.0\"\n",
            graph.uri()
        ),
    )
    .await;
    let bearer = format!("Bearer {TOKEN}");
    Mock::given(method("GET"))
        .and(path("/v26.0/2153937768413427"))
        .and(header("authorization", bearer.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp", "mime_type": "audio/ogg",
            "url": format!("{}/whatsapp_business/attachments/voice.ogg", graph.uri()),
            "file_size": 20, "id": "2153937768413427"})))
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/whatsapp_business/attachments/voice.ogg"))
        .and(header("authorization", bearer.as_str()))
        .respond_with(FileStore { fallback: "" })
        .expect(1)
        .mount(&graph)
        .await;
    let body = fixture!("whatsapp/voice.json");
    let response = app
        .http
        .post(app.url("/hooks/wa"))
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            format!("sha256={}", hmac_hex(APP_SECRET, body.as_bytes())),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let m = published(&fake, 1).await.remove(0);
    assert_eq!(
        summary(&m),
        (phone("+447700900123"), vec!["FILE/VOICE_RECORDING".into()])
    );
    assert_eq!(m["senders"][0]["name"], "Priya");
    assert_eq!(m["timestamp"], "2026-07-02T14:11:24.000Z");
    assert_eq!(fake.uploads()[0].content_type, "audio/ogg");
    assert_files_uploaded(&fake, &m);
    fake.assert_no_violations();
}

#[tokio::test]
async fn messenger_attachments_publish_in_order_each_with_its_usage_type() {
    const TOKEN: &str = "EAAG-it-messenger-page-token";
    const APP_SECRET: &str = "it-messenger-app-secret";
    let fake = HubspotFake::start().await;
    let graph = MockServer::start().await;
    let app = spawn(
        &fake,
        &format!(
            "[channels.fb]\nkind = \"messenger\"\npage_access_token = \"{TOKEN}\"\n\
             app_secret = \"{APP_SECRET}\"\nverify_token = \"verify\"\napi_base = \"{}/v26.0\"\n",
            graph.uri()
        ),
    )
    .await;
    Mock::given(method("GET"))
        .respond_with(FileStore {
            fallback: "application/octet-stream",
        })
        .mount(&graph)
        .await;
    // The CDN addresses of the fixture, served by the mock (the channel's own origin).
    let body = fixture!("messenger/attachments.json")
        .replace("https://scontent.xx.fbcdn.net", &graph.uri())
        .replace("https://video.xx.fbcdn.net", &graph.uri())
        .replace("https://cdn.fbsbx.com", &graph.uri());
    let response = app
        .http
        .post(app.url("/hooks/fb"))
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            format!("sha256={}", hmac_hex(APP_SECRET, body.as_bytes())),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let messages = published(&fake, 4).await;
    let summaries: Vec<_> = messages.iter().map(summary).collect();
    let psid = opaque("7210934512867345");
    assert_eq!(
        summaries,
        vec![
            (psid.clone(), vec!["FILE/IMAGE".into(), "FILE/IMAGE".into()]),
            (psid.clone(), vec!["FILE/OTHER".into()]),
            (psid.clone(), vec!["FILE/AUDIO".into()]),
            (psid, vec!["FILE/OTHER".into()]),
        ]
    );
    assert_eq!(fake.uploads().len(), 5);
    assert_eq!(fake.uploads()[4].content_type, "application/pdf");
    for m in &messages {
        assert_files_uploaded(&fake, m);
    }
    fake.assert_no_violations();
}

#[tokio::test]
async fn line_media_comes_from_the_content_api_and_a_line_sticker_is_unsupported_content() {
    const TOKEN: &str = "line-access-token";
    const SECRET: &str = "line-channel-secret";
    let fake = HubspotFake::start().await;
    let line = MockServer::start().await;
    let app = spawn(
        &fake,
        &format!(
            "[channels.line]\nkind = \"line\"\nchannel_access_token = \"{TOKEN}\"\n\
             channel_secret = \"{SECRET}\"\napi_base = \"{uri}\"\napi_data_base = \"{uri}/data\"\n",
            uri = line.uri()
        ),
    )
    .await;
    Mock::given(method("GET"))
        .respond_with(FileStore {
            fallback: "application/octet-stream",
        })
        .mount(&line)
        .await;
    let body = fixture!("line/media.json")
        .replace("https://cdn.example.com", &format!("{}/data", line.uri()));
    let response = app
        .http
        .post(app.url("/hooks/line"))
        .header("content-type", "application/json; charset=utf-8")
        .header(
            "x-line-signature",
            channel_bridge::adapters::line::sign(SECRET, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let messages = published(&fake, 7).await;
    let user = opaque("U3311aa00bb11cc22dd33ee44ff556677");
    let kinds: Vec<Vec<String>> = messages.iter().map(|m| summary(m).1).collect();
    assert!(messages.iter().all(|m| summary(m).0 == user));
    assert_eq!(
        kinds,
        vec![
            vec!["FILE/IMAGE".to_owned()],
            vec!["FILE/IMAGE".to_owned()],
            vec!["FILE/OTHER".to_owned()],
            vec!["FILE/AUDIO".to_owned()],
            vec!["FILE/OTHER".to_owned()],
            vec!["LOCATION".to_owned()],
            vec!["UNSUPPORTED_CONTENT".to_owned()],
        ]
    );
    let requests = line.received_requests().await.unwrap();
    let content = requests
        .iter()
        .find(|r| r.url.path() == "/data/v2/bot/message/354718705033693859/content")
        .expect("the image came from the content API");
    assert_eq!(content.headers["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(
        fake.uploads()
            .iter()
            .map(|u| u.file_name.as_str())
            .collect::<Vec<_>>()[4],
        "invoice.pdf"
    );
    assert_eq!(messages[5]["attachments"][0]["name"], "Our shop");
    // A LINE sticker is a package and a sticker id, no file: its text, nothing missing.
    assert_eq!(messages[6]["text"], "Thanks!");
    // Published in the order the contact sent them.
    let sent: Vec<&str> = messages
        .iter()
        .map(|m| m["timestamp"].as_str().unwrap())
        .collect();
    let mut sorted = sent.clone();
    sorted.sort();
    assert_eq!(sent, sorted);
    for m in &messages {
        assert_files_uploaded(&fake, m);
    }
    fake.assert_no_violations();
}

#[tokio::test]
async fn twilio_mms_media_is_fetched_with_basic_auth_and_the_sender_is_a_phone_number() {
    const ACCOUNT: &str = "ACaaaabbbbccccddddeeeeffff00001111";
    const TOKEN: &str = "twilio-auth-token";
    let fake = HubspotFake::start().await;
    let twilio = MockServer::start().await;
    let app = spawn(
        &fake,
        &format!(
            "[channels.sms]\nkind = \"twilio\"\naccount_sid = \"{ACCOUNT}\"\n\
             auth_token = \"{TOKEN}\"\nfrom = \"+14155550199\"\napi_base = \"{}\"\n",
            twilio.uri()
        ),
    )
    .await;
    let types = ["image/jpeg", "video/mp4", "application/pdf"];
    for (i, mime) in types.iter().enumerate() {
        Mock::given(method("GET"))
            .and(path(format!(
                "/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1f2e3d4c5b6a79880f1e2d3c4b5a6978/Media/ME0000000000000000000000000000000{}",
                i + 1
            )))
            .respond_with(ResponseTemplate::new(200).set_body_raw(vec![i as u8; 8], mime))
            .expect(1)
            .mount(&twilio)
            .await;
    }
    let body = fixture!("twilio/mms_media.form");
    let params: Vec<(String, String)> = serde_urlencoded::from_str(body).unwrap();
    let signature = channel_bridge::adapters::twilio::sign(
        TOKEN,
        "https://bridge.example.test/hooks/sms",
        &params,
    );
    let response = app
        .http
        .post(app.url("/hooks/sms"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let m = published(&fake, 1).await.remove(0);
    assert_eq!(
        summary(&m),
        (
            phone("+14155550123"),
            vec![
                "FILE/IMAGE".into(),
                "FILE/OTHER".into(),
                "FILE/OTHER".into()
            ]
        )
    );
    assert_eq!(m["text"], "Photos of the damage");
    let uploads = fake.uploads();
    assert_eq!(
        uploads
            .iter()
            .map(|u| u.content_type.as_str())
            .collect::<Vec<_>>(),
        types
    );
    let requests = twilio.received_requests().await.unwrap();
    assert!(
        requests.iter().all(|r| r.headers["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")),
        "media is fetched with the account's credentials"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn viber_picture_is_fetched_from_its_media_url_and_published_with_its_caption() {
    const AUTH_TOKEN: &str = "4453b6ac12345678-e02c5f12174805f9-daec9cbb5448c51r";
    let fake = HubspotFake::start().await;
    let viber = MockServer::start().await;
    let app = spawn(
        &fake,
        &format!(
            "[channels.vb]\nkind = \"viber\"\nauth_token = \"{AUTH_TOKEN}\"\n\
             api_base = \"{}\"\nsender_name = \"Acme Support\"\n",
            viber.uri()
        ),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/5/media/IMG_0042.jpg"))
        .respond_with(FileStore { fallback: "" })
        .expect(1)
        .mount(&viber)
        .await;
    let body = fixture!("viber/picture.json").replace(
        "https://dl-media.viber.com/5/media/2/short/any/sig/image/0x0/IMG_0042.jpg",
        &format!("{}/5/media/IMG_0042.jpg", viber.uri()),
    );
    let response = app
        .http
        .post(app.url("/hooks/vb"))
        .header("content-type", "application/json")
        .header(
            "x-viber-content-signature",
            hmac_hex(AUTH_TOKEN, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let m = published(&fake, 1).await.remove(0);
    assert_eq!(
        summary(&m),
        (
            opaque("h7Qx2mK9vP4rT1wZ8cN3bA=="),
            vec!["FILE/IMAGE".into()]
        )
    );
    assert_eq!(m["text"], "The box arrived like this");
    assert_eq!(m["senders"][0]["name"], "Olena");
    assert_eq!(fake.uploads()[0].file_name, "IMG_0042.jpg");
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_generic_app_user_known_by_email_is_published_as_an_email_address() {
    let fake = HubspotFake::start().await;
    let app = TestApp::spawn_with(Options {
        extra: format!(
            "[channels.app]\nkind = \"generic\"\nname = \"In-house app\"\nsecret = \"{}\"\n\
             outbound_url = \"https://app.example.test/outbound\"\nmedia_allow_private = true\n{}\n{}",
            secret(),
            link(),
            fake.config_section("")
        ),
        ..Options::default()
    })
    .await;
    Mock::given(method("GET"))
        .and(path("/media/receipt.png"))
        .respond_with(FileStore { fallback: "" })
        .expect(1)
        .mount(&app.receiver)
        .await;
    let event = json!({
        "type": "message", "id": "app-1", "from": {"id": "ana@example.com", "name": "Ana"},
        "parts": [{"type": "text", "text": "Receipt attached"},
                  {"type": "image", "media": {"url": format!("{}/media/receipt.png", app.receiver.uri())}}]
    });
    assert_eq!(app.post_webhook("app", &event).await.status(), 200);

    let m = published(&fake, 1).await.remove(0);
    assert_eq!(
        summary(&m),
        (
            json!({"type": "HS_EMAIL_ADDRESS", "value": "ana@example.com"}),
            vec!["FILE/IMAGE".into()]
        )
    );
    assert_eq!(m["recipients"][0]["name"], "In-house app");
    assert_eq!(m["recipients"][0]["deliveryIdentifier"], opaque("app"));
    assert_eq!(fake.uploads()[0].content_type, "image/png");
    fake.assert_no_violations();
}
