//! Secrets never leave: a daemon configured with distinctive secrets (webhook secrets,
//! platform tokens, the SMTP password, API tokens) is driven through its paths, failures
//! included (bad signatures, handshakes, sends to a platform that echoes the request's
//! URL and Authorization header back in its error, a refused SMTP server, a broken config
//! reloaded, `check-config` on it), and every log line (JSON, at debug level) and every
//! response is scanned for them.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::process::Command;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::daemon::{ADMIN_TOKEN, DEADLINE, Daemon, REP_TOKEN, Setup, secret, wait_until};
use crate::support::fixtures::fixture;

const TG_BOT: &str = "7700770077:TG-BOT-TOKEN-q8Zx31";
const TG_SECRET: &str = "TG-SECRET-TOKEN-m2Pw77";
const WA_ACCESS: &str = "WA-ACCESS-TOKEN-k4Jd90";
const WA_APP_SECRET: &str = "WA-APP-SECRET-u1Rt55";
const WA_VERIFY: &str = "WA-VERIFY-TOKEN-c6Hn12";
const FB_PAGE: &str = "FB-PAGE-TOKEN-y3Lq08";
const FB_APP_SECRET: &str = "FB-APP-SECRET-e9Vb64";
const FB_VERIFY: &str = "FB-VERIFY-TOKEN-s5Gm21";
const LINE_ACCESS: &str = "LINE-ACCESS-TOKEN-a7Kc43";
const LINE_SECRET: &str = "LINE-CHANNEL-SECRET-o2Xf86";
const TWILIO_TOKEN: &str = "TWILIO-AUTH-TOKEN-i8Ns39";
const VIBER_TOKEN: &str = "VIBER-AUTH-TOKEN-w1Dz67";
const SMTP_PASSWORD: &str = "SMTP-PASSWORD-h6Tu50";
const PHONE_NUMBER_ID: &str = "227118690421377";

/// Every secret, as the scan looks for it (the generic secret by its key part too).
fn secrets() -> Vec<String> {
    let generic = secret();
    let key = generic.trim_start_matches("whsec_").to_owned();
    [
        TG_BOT,
        TG_SECRET,
        WA_ACCESS,
        WA_APP_SECRET,
        WA_VERIFY,
        FB_PAGE,
        FB_APP_SECRET,
        FB_VERIFY,
        LINE_ACCESS,
        LINE_SECRET,
        TWILIO_TOKEN,
        VIBER_TOKEN,
        SMTP_PASSWORD,
        ADMIN_TOKEN,
        REP_TOKEN,
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([generic, key])
    .collect()
}

/// A platform that refuses everything and quotes the request back: its URL (a bot token
/// in the path) and every header (bearer tokens, Viber's auth token).
struct Echo;

impl Respond for Echo {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let authorization: Vec<String> = request
            .headers
            .iter()
            .map(|(name, value)| format!("{name}={}", value.to_str().unwrap_or_default()))
            .collect();
        let authorization = authorization.join("; ");
        ResponseTemplate::new(400).set_body_json(json!({
            "ok": false,
            "error": {"message": format!("bad request to {} with {authorization}", request.url)},
            "description": format!("bad request to {}", request.url),
        }))
    }
}

fn channels(platform: &str, smtp_port: u16) -> String {
    format!(
        r#"
[smtp]
url = "smtp://bridge:{SMTP_PASSWORD}@127.0.0.1:{smtp_port}"
from = "bridge@example.test"

[channels.mail]
kind = "email"

[channels.tg]
kind = "telegram"
bot_token = "{TG_BOT}"
secret_token = "{TG_SECRET}"
api_base = "{platform}"

[channels.wa]
kind = "whatsapp"
access_token = "{WA_ACCESS}"
app_secret = "{WA_APP_SECRET}"
verify_token = "{WA_VERIFY}"
phone_number_id = "{PHONE_NUMBER_ID}"
api_base = "{platform}/v1"

[channels.fb]
kind = "messenger"
page_access_token = "{FB_PAGE}"
app_secret = "{FB_APP_SECRET}"
verify_token = "{FB_VERIFY}"
api_base = "{platform}/v1"

[channels.ln]
kind = "line"
channel_access_token = "{LINE_ACCESS}"
channel_secret = "{LINE_SECRET}"
api_base = "{platform}"
api_data_base = "{platform}"

[channels.sms]
kind = "twilio"
account_sid = "ACaaaabbbbccccddddeeeeffff00001111"
auth_token = "{TWILIO_TOKEN}"
from = "+14155550100"
api_base = "{platform}"

[channels.vb]
kind = "viber"
auth_token = "{VIBER_TOKEN}"
api_base = "{platform}"
"#
    )
}

/// Collects everything the daemon says to the outside.
#[derive(Default)]
struct Transcript(Vec<String>);

impl Transcript {
    async fn record(&mut self, what: &str, response: reqwest::Response) -> (u16, Value) {
        let status = response.status().as_u16();
        let headers = format!("{:?}", response.headers());
        let text = response.text().await.unwrap_or_default();
        self.0
            .push(format!("{what} -> {status}\n{headers}\n{text}"));
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&mut self, daemon: &Daemon, path: &str, token: &str) -> (u16, Value) {
        let response = daemon
            .http
            .get(daemon.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        self.record(&format!("GET {path}"), response).await
    }

    async fn post(
        &mut self,
        daemon: &Daemon,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut request = daemon
            .http
            .post(daemon.url(path))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        self.record(&format!("POST {path}"), response).await
    }
}

fn hub_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn mac(secret: &str, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

fn line_signature(secret: &str, body: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(mac(secret, body))
}

fn viber_signature(token: &str, body: &[u8]) -> String {
    hex::encode(mac(token, body))
}

/// Fails the test naming every secret found in `text`, and where.
fn assert_clean(what: &str, text: &str) {
    let found: Vec<String> = secrets()
        .into_iter()
        .filter(|s| text.contains(s.as_str()))
        .collect();
    if !found.is_empty() {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| found.iter().any(|s| l.contains(s.as_str())))
            .take(10)
            .collect();
        panic!("{what} shows secrets {found:?}:\n{}", lines.join("\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_line_or_a_response_on_any_path() {
    let platform = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(Echo)
        .mount(&platform)
        .await;
    // Nothing listens here: email sends fail to connect.
    let smtp_port = crate::daemon::free_port();
    let mut setup = Setup::new(
        &format!("{}/generic", platform.uri()),
        &[0, 50],
        "",
        &channels(&platform.uri(), smtp_port),
    );
    setup.env.push(("RUST_LOG".into(), "debug".into()));
    let daemon = setup.start().await;
    let mut out = Transcript::default();

    // Inbound with bad signatures, on every channel.
    for channel in ["demo", "tg", "wa", "fb", "ln", "sms", "vb"] {
        let headers = [
            ("webhook-id", "evt_1".to_owned()),
            (
                "webhook-timestamp",
                chrono::Utc::now().timestamp().to_string(),
            ),
            ("webhook-signature", "v1,AAAA".to_owned()),
            ("x-telegram-bot-api-secret-token", "wrong".to_owned()),
            ("x-hub-signature-256", "sha256=00".to_owned()),
            ("x-line-signature", "AAAA".to_owned()),
            ("x-twilio-signature", "AAAA".to_owned()),
            ("x-viber-content-signature", "00".to_owned()),
        ];
        let (status, _) = out
            .post(
                &daemon,
                &format!("/hooks/{channel}"),
                &headers,
                b"{}".to_vec(),
            )
            .await;
        assert!(status == 401 || status == 415, "{channel}: {status}");
    }
    // Meta handshakes: a wrong verify token and the right one (it rides in the query).
    for (channel, verify) in [("wa", WA_VERIFY), ("fb", FB_VERIFY)] {
        for token in ["wrong", verify] {
            let response = daemon
                .http
                .get(daemon.url(&format!(
                    "/hooks/{channel}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=42"
                )))
                .send()
                .await
                .unwrap();
            out.record("handshake", response).await;
        }
    }

    // Real conversations: generic, Telegram and WhatsApp (the contact has an email).
    let event = json!({"type": "message", "id": "g-1",
        "from": {"id": "ana", "email": "ana@example.test"},
        "parts": [{"type": "text", "text": "hi"}]});
    let body = event.to_string().into_bytes();
    let key = channel_bridge::adapters::signature::WebhookKey::parse(&secret()).unwrap();
    let ts = chrono::Utc::now().timestamp();
    let (status, _) = out
        .post(
            &daemon,
            "/hooks/demo",
            &[
                ("webhook-id", "evt_g1".to_owned()),
                ("webhook-timestamp", ts.to_string()),
                ("webhook-signature", key.sign("evt_g1", ts, &body)),
            ],
            body,
        )
        .await;
    assert_eq!(status, 200);
    let tg = fixture!("telegram/text.json").as_bytes().to_vec();
    let (status, _) = out
        .post(
            &daemon,
            "/hooks/tg",
            &[("x-telegram-bot-api-secret-token", TG_SECRET.to_owned())],
            tg,
        )
        .await;
    assert_eq!(status, 200);
    let wa = fixture!("whatsapp/text_reply.json").as_bytes().to_vec();
    let (status, _) = out
        .post(
            &daemon,
            "/hooks/wa",
            &[("x-hub-signature-256", hub_signature(WA_APP_SECRET, &wa))],
            wa,
        )
        .await;
    assert_eq!(status, 200);

    let line = fixture!("line/text.json").as_bytes().to_vec();
    let (status, _) = out
        .post(
            &daemon,
            "/hooks/ln",
            &[("x-line-signature", line_signature(LINE_SECRET, &line))],
            line,
        )
        .await;
    assert_eq!(status, 200);
    let viber = fixture!("viber/text.json").as_bytes().to_vec();
    let (status, _) = out
        .post(
            &daemon,
            "/hooks/vb",
            &[(
                "x-viber-content-signature",
                viber_signature(VIBER_TOKEN, &viber),
            )],
            viber,
        )
        .await;
    assert_eq!(status, 200);

    // A reply on each, refused by a platform that echoes credentials, plus one by email.
    let (_, conversations) = out.get(&daemon, "/api/v1/conversations", ADMIN_TOKEN).await;
    let conversations = conversations["items"].as_array().unwrap().clone();
    assert_eq!(conversations.len(), 5);
    for conversation in &conversations {
        let id = conversation["id"].as_str().unwrap();
        let mut bodies = vec![json!({"parts": [{"type": "text", "text": "an answer"}]})];
        if conversation["channel_id"] == "demo" {
            bodies.push(
                json!({"parts": [{"type": "text", "text": "by mail"}], "via_channel": "mail"}),
            );
        }
        for body in bodies {
            let response = daemon
                .http
                .post(daemon.url(&format!("/api/v1/conversations/{id}/messages")))
                .bearer_auth(REP_TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap();
            let (status, reply) = out.record("reply", response).await;
            assert_eq!(status, 202, "{reply}");
        }
    }
    wait_until("every send has failed", DEADLINE, || async {
        daemon.deliveries("dead").await.len() >= 6
    })
    .await;
    assert!(
        platform
            .received_requests()
            .await
            .unwrap()
            .iter()
            .any(|r| r.url.path().contains(TG_BOT)),
        "the echoing platform saw the bot token, so its answer quoted it"
    );

    // Every API read a rep or an admin would make, and wrong tokens.
    for path in [
        "/api/v1/deliveries?state=dead",
        "/api/v1/deliveries?state=pending",
        "/api/v1/channels",
        "/api/v1/conversations",
        "/api/v1/reps",
        "/readyz",
        "/metrics",
        "/api/openapi.json",
    ] {
        out.get(&daemon, path, ADMIN_TOKEN).await;
    }
    for conversation in &conversations {
        let id = conversation["id"].as_str().unwrap();
        out.get(
            &daemon,
            &format!("/api/v1/conversations/{id}/messages"),
            REP_TOKEN,
        )
        .await;
    }
    for token in [format!("{ADMIN_TOKEN}x"), REP_TOKEN[1..].to_owned()] {
        let (status, _) = out.get(&daemon, "/api/v1/conversations", &token).await;
        assert_eq!(status, 401);
    }

    // A broken config, reloaded: refused, its errors logged and shown by /readyz.
    let good = std::fs::read_to_string(&setup.config).unwrap();
    let broken = good
        .replace(
            &format!("bot_token = \"{TG_BOT}\""),
            &format!("bot_token = \"{TG_BOT}\" trailing"),
        )
        .replace(
            &format!("verify_token = \"{WA_VERIFY}\""),
            &format!("verify_tokn = \"{WA_VERIFY}\""),
        );
    std::fs::write(&setup.config, &broken).unwrap();
    Command::new("kill")
        .args(["-HUP", &daemon.pid().to_string()])
        .status()
        .unwrap();
    wait_until("the broken config is refused", DEADLINE, || async {
        daemon.get("/readyz").await["config"]["error"].is_string()
    })
    .await;
    out.get(&daemon, "/readyz", ADMIN_TOKEN).await;
    // The semantic error alone (a misspelt key next to a secret).
    std::fs::write(
        &setup.config,
        good.replace(
            &format!("verify_token = \"{WA_VERIFY}\""),
            &format!("verify_tokn = \"{WA_VERIFY}\""),
        ),
    )
    .unwrap();
    let broken_file = setup.dir.path().join("broken.toml");
    std::fs::write(&broken_file, &broken).unwrap();
    for file in [&broken_file, &setup.config] {
        let output = Command::new(crate::daemon::BIN)
            .arg("--config")
            .arg(file)
            .arg("check-config")
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(1),
            "check-config refuses {file:?}"
        );
        out.0
            .push(String::from_utf8_lossy(&output.stdout).into_owned());
        out.0
            .push(String::from_utf8_lossy(&output.stderr).into_owned());
    }

    drop(daemon);
    let log = std::fs::read_to_string(setup.log_path()).unwrap();
    assert!(
        log.lines().count() > 50 && log.contains("\"level\":\"DEBUG\""),
        "the log was captured at debug level"
    );
    assert_clean("the daemon log", &log);
    for (n, response) in out.0.iter().enumerate() {
        assert_clean(&format!("response {n}"), response);
    }
}
