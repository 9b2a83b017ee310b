//! Instagram Direct end to end: Meta-signed `object: "instagram"` webhooks in, the
//! Instagram messaging endpoint `/{account_id}/messages` (played by wiremock at the
//! channel's `api_base`) out.

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Options, REP_TOKEN, TestApp, items};
use crate::support::fixtures::fixture;

const APP_SECRET: &str = "it-instagram-app-secret";
const TOKEN: &str = "IGAA-it-instagram-access-token";
const VERIFY_TOKEN: &str = "it-instagram-verify-token";
const ACCOUNT: &str = "17841405822304914";
const IGSID: &str = "1254459154682919";
const SEND_PATH: &str = "/v26.0/17841405822304914/messages";
const FIRST_MID: &str = "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1";

/// The app with an `ig` channel whose Graph API is `graph`.
struct Instagram {
    app: TestApp,
    graph: MockServer,
}

impl Instagram {
    async fn spawn() -> Self {
        let graph = MockServer::start().await;
        let app = TestApp::spawn_with(Options {
            extra: format!(
                r#"
[channels.ig]
kind = "instagram"
access_token = "{TOKEN}"
app_secret = "{APP_SECRET}"
verify_token = "{VERIFY_TOKEN}"
account_id = "{ACCOUNT}"
api_base = "{}/v26.0"
"#,
                graph.uri()
            ),
            ..Options::default()
        })
        .await;
        Self { app, graph }
    }

    /// POSTs a webhook body signed the way Meta signs it.
    async fn post(&self, body: &str) -> reqwest::Response {
        let signature = signature(APP_SECRET, body.as_bytes());
        self.post_raw(body.as_bytes().to_vec(), Some(signature))
            .await
    }

    async fn post_raw(&self, body: Vec<u8>, signature: Option<String>) -> reqwest::Response {
        let mut request = self
            .app
            .http
            .post(self.app.url("/hooks/ig"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        request.send().await.expect("request reaches the app")
    }

    /// Posts a signed body; expects 200 and returns the answer.
    async fn ok(&self, body: &str) -> Value {
        let response = self.post(body).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Mounts the send endpoint answering every message with `mid`, requiring the token.
    async fn accept_sends(&self, mid: &str) {
        Mock::given(method("POST"))
            .and(path(SEND_PATH))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"recipient_id": IGSID, "message_id": mid})),
            )
            .mount(&self.graph)
            .await;
    }

    async fn sent_requests(&self) -> Vec<wiremock::Request> {
        self.graph
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path() == SEND_PATH)
            .collect()
    }

    async fn sent(&self) -> Vec<Value> {
        self.sent_requests()
            .await
            .iter()
            .map(|r| serde_json::from_slice(&r.body).expect("send body is JSON"))
            .collect()
    }

    /// The conversation of the `text_reply` fixture; returns its id.
    async fn conversation(&self) -> String {
        assert_eq!(
            self.ok(fixture!("instagram/text_reply.json")).await["stored"],
            1
        );
        self.app.only_conversation().await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn outbound(&self, conversation: &str) -> Value {
        self.app
            .messages(conversation)
            .await
            .into_iter()
            .rfind(|m| m["direction"] == "outbound")
            .expect("an outbound message")
    }
}

fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn a_signed_message_is_stored_and_the_reply_reaches_the_account_send_endpoint() {
    let ig = Instagram::spawn().await;
    ig.accept_sends("aWdfOUT1").await;
    let id = ig.conversation().await;
    let conversation = ig.app.only_conversation().await;
    assert_eq!(conversation["channel_id"], "ig");
    assert_eq!(
        conversation["contact"]["identifiers"],
        json!([{"channel_id": "ig", "type": "instagram_igsid", "value": IGSID}])
    );
    let inbound = &ig.app.messages(&id).await[0];
    assert_eq!(inbound["platform_message_id"], FIRST_MID);
    assert_eq!(
        inbound["parts"],
        json!([{"type": "text", "text": "Is the linen shirt back in stock? \u{2014} \u{1f600}"}])
    );

    let (status, _) = ig.app.reply(&id, "Yes, since Monday").await;
    assert_eq!(status, 202);
    ig.app.drain_outbox().await;
    assert_eq!(
        ig.sent().await,
        vec![json!({"recipient": {"id": IGSID}, "message": {"text": "Yes, since Monday"}})]
    );
    assert_eq!(
        ig.sent_requests().await[0].url.query(),
        None,
        "no token in URLs"
    );
    let sent = ig.outbound(&id).await;
    assert_eq!(sent["delivery"]["status"], "sent");
    assert_eq!(sent["platform_message_id"], "aWdfOUT1");
}

#[tokio::test]
async fn media_replies_go_as_url_attachments_and_captions_follow() {
    let ig = Instagram::spawn().await;
    ig.accept_sends("aWdfOUT2").await;
    let id = ig.conversation().await;
    let (status, queued) = ig
        .app
        .api(
            Method::POST,
            &format!("/api/v1/conversations/{id}/messages"),
            Some(json!({"parts": [
                {"type": "image", "media": {"url": "https://cdn.example/label.png"}, "caption": "Print it"},
                {"type": "video", "media": {"url": "https://cdn.example/how.mp4"}},
                {"type": "audio", "media": {"url": "https://cdn.example/note.m4a"}},
                {"type": "file", "media": {"url": "https://cdn.example/invoice.pdf"}}
            ]})),
            Some(REP_TOKEN),
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    ig.app.drain_outbox().await;
    let messages: Vec<Value> = ig
        .sent()
        .await
        .into_iter()
        .map(|b| b["message"].clone())
        .collect();
    assert_eq!(
        messages,
        vec![
            json!({"attachment": {"type": "image", "payload": {"url": "https://cdn.example/label.png"}}}),
            json!({"text": "Print it"}),
            json!({"attachment": {"type": "video", "payload": {"url": "https://cdn.example/how.mp4"}}}),
            json!({"attachment": {"type": "audio", "payload": {"url": "https://cdn.example/note.m4a"}}}),
            json!({"attachment": {"type": "file", "payload": {"url": "https://cdn.example/invoice.pdf"}}}),
        ]
    );
    assert_eq!(ig.outbound(&id).await["delivery"]["status"], "sent");
}

#[tokio::test]
async fn a_reply_outside_the_24_hour_window_fails_at_once_with_instagrams_message() {
    let ig = Instagram::spawn().await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "(#10) This message is sent outside of allowed window.",
            "type": "OAuthException", "code": 10, "error_subcode": 2534022,
            "fbtrace_id": "AbCdEf"}})))
        .expect(1)
        .mount(&ig.graph)
        .await;
    let id = ig.conversation().await;
    ig.app.reply(&id, "Are you still there?").await;
    ig.app.drain_outbox().await;

    let dead = items(ig.app.get("/api/v1/deliveries?state=dead").await);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["attempts"], 1);
    let error = dead[0]["last_error"].as_str().unwrap();
    assert!(error.contains("10/2534022"), "{error}");
    assert!(error.contains("outside of allowed window"), "{error}");
    assert!(!error.contains(TOKEN));
    assert_eq!(ig.outbound(&id).await["delivery"]["status"], "failed");
}

#[tokio::test]
async fn every_attachment_kind_is_stored_as_its_part() {
    let ig = Instagram::spawn().await;
    assert_eq!(
        ig.ok(fixture!("instagram/attachments.json")).await["stored"],
        4
    );
    assert_eq!(
        ig.ok(fixture!("instagram/shares_and_stories.json")).await["stored"],
        6
    );
    assert_eq!(
        ig.ok(fixture!("instagram/quick_reply.json")).await["stored"],
        1
    );
    assert_eq!(
        ig.ok(fixture!("instagram/postback.json")).await["stored"],
        1
    );
    let id = ig.app.only_conversation().await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let kinds: Vec<String> = ig
        .app
        .messages(&id)
        .await
        .iter()
        .map(|m| {
            m["parts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| match p["type"].as_str().unwrap() {
                    "unsupported" => {
                        format!("unsupported:{}", p["platform_type"].as_str().unwrap())
                    }
                    other => other.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "image+image",
            "video",
            "audio",
            "file",
            "text",
            "unsupported:story_mention",
            "text+unsupported:story_reply",
            "unsupported:ig_reel",
            "unsupported:reel",
            "unsupported:message",
            "text",
            "text",
        ]
    );
}

#[tokio::test]
async fn a_read_receipt_marks_the_reply_read() {
    let ig = Instagram::spawn().await;
    ig.accept_sends("aWdfOUT1").await;
    let id = ig.conversation().await;
    ig.app.reply(&id, "Shipped today").await;
    ig.app.drain_outbox().await;
    assert_eq!(ig.outbound(&id).await["delivery"]["status"], "sent");
    ig.ok(fixture!("instagram/read.json")).await;
    assert_eq!(ig.outbound(&id).await["delivery"]["status"], "read");
}

#[tokio::test]
async fn an_edit_replaces_the_text_and_a_deletion_retracts_the_message() {
    let ig = Instagram::spawn().await;
    let id = ig.conversation().await;
    ig.ok(fixture!("instagram/edit.json")).await;
    let message = &ig.app.messages(&id).await[0];
    assert_eq!(
        message["parts"],
        json!([{"type": "text", "text": "Is the linen shirt back in stock in size L?"}])
    );
    assert_eq!(message["history"].as_array().unwrap().len(), 1);
    ig.ok(fixture!("instagram/deleted.json")).await;
    let message = &ig.app.messages(&id).await[0];
    assert!(message["retracted_at"].is_string(), "{message}");
}

#[tokio::test]
async fn echoes_and_reactions_are_not_stored() {
    let ig = Instagram::spawn().await;
    let answer = ig.ok(fixture!("instagram/echo_and_reaction.json")).await;
    assert_eq!(answer["stored"], 0);
    assert!(ig.app.conversations().await.is_empty());
}

#[tokio::test]
async fn the_subscription_handshake_echoes_the_challenge_for_the_right_token_only() {
    let ig = Instagram::spawn().await;
    let get = |token: &str| {
        ig.app
            .http
            .get(ig.app.url(&format!(
                "/hooks/ig?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=4242"
            )))
            .send()
    };
    let ok = get(VERIFY_TOKEN).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "4242");
    assert_eq!(get("a-guess").await.unwrap().status(), 403);
}

#[tokio::test]
async fn a_forged_or_missing_signature_is_refused_and_nothing_is_stored() {
    let ig = Instagram::spawn().await;
    let body = fixture!("instagram/text_reply.json").as_bytes().to_vec();
    let forged = ig
        .post_raw(body.clone(), Some(signature("not-the-app-secret", &body)))
        .await;
    assert_eq!(forged.status(), 401);
    assert_eq!(ig.post_raw(body, None).await.status(), 401);
    assert!(ig.app.conversations().await.is_empty());
}

#[tokio::test]
async fn a_redelivered_webhook_stores_nothing_twice() {
    let ig = Instagram::spawn().await;
    let id = ig.conversation().await;
    let answer = ig.ok(fixture!("instagram/text_reply.json")).await;
    assert_eq!(
        (answer["stored"].as_u64(), answer["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(ig.app.messages(&id).await.len(), 1);
}

#[tokio::test]
async fn a_messenger_body_is_refused_on_an_instagram_channel() {
    let ig = Instagram::spawn().await;
    let body = fixture!("instagram/text_reply.json")
        .replace(r#""object": "instagram""#, r#""object": "page""#);
    let response = ig.post(&body).await;
    assert_eq!(response.status(), 400);
    assert!(ig.app.conversations().await.is_empty());
}

#[tokio::test]
async fn a_rep_opens_an_inbound_image_fetched_with_the_token_which_never_reaches_them() {
    let ig = Instagram::spawn().await;
    let png = vec![0x89u8, b'P', b'N', b'G'];
    Mock::given(method("GET"))
        .and(path("/cdn/ig1.png"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_raw(png.clone(), "image/png"))
        .expect(1)
        .mount(&ig.graph)
        .await;
    let url = format!("{}/cdn/ig1.png?asset_id=1", ig.graph.uri());
    let body = json!({"object": "instagram", "entry": [{"id": ACCOUNT, "time": 1, "messaging": [
        {"sender": {"id": IGSID}, "recipient": {"id": ACCOUNT}, "timestamp": 1783002420000u64,
         "message": {"mid": "aWdfIMG9", "attachments": [{"type": "image", "payload": {"url": url}}]}}]}]});
    ig.ok(&body.to_string()).await;
    let id = ig.app.only_conversation().await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let message = &ig.app.messages(&id).await[0];
    let response = ig
        .app
        .http
        .get(ig.app.url(&format!(
            "/api/v1/messages/{}/parts/0/media",
            message["id"].as_str().unwrap()
        )))
        .bearer_auth(REP_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(!format!("{:?}", response.headers()).contains(TOKEN));
    assert_eq!(response.bytes().await.unwrap().to_vec(), png);
}
