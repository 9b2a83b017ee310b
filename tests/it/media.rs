//! Inbound media opened by a rep: fetched from where the platform keeps it, capped.

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::harness::{Options, REP_TOKEN, TestApp};
use crate::support::fixtures::fixture;

async fn message_with_media(app: &TestApp) -> String {
    let event = json!({
        "type": "message", "id": "m1", "from": {"id": "ana"},
        "parts": [
            {"type": "text", "text": "see attached"},
            {"type": "image", "media": {"url": format!("{}/media/photo.png", app.receiver.uri()),
                                         "mime_type": "image/png", "filename": "photo.png"}},
            {"type": "file", "media": {"url": format!("{}/media/huge.bin", app.receiver.uri())}},
            {"type": "file", "media": {"url": format!("{}/media/gone.pdf", app.receiver.uri())}}
        ]
    });
    assert_eq!(app.post_webhook("demo", &event).await.status(), 200);
    let conversation = app.only_conversation().await;
    app.messages(conversation["id"].as_str().unwrap()).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_rep_opens_inbound_media_through_the_api_within_the_size_cap() {
    let app = TestApp::spawn_with(Options {
        extra: "[media]\nmax_bytes = 1000\n".into(),
        ..Options::default()
    })
    .await;
    let png = vec![0x89u8, b'P', b'N', b'G', 1, 2, 3];
    Mock::given(method("GET"))
        .and(path("/media/photo.png"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(png.clone(), "image/png"))
        .mount(&app.receiver)
        .await;
    Mock::given(method("GET"))
        .and(path("/media/huge.bin"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(vec![0u8; 5000], "application/octet-stream"),
        )
        .mount(&app.receiver)
        .await;
    Mock::given(method("GET"))
        .and(path("/media/gone.pdf"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&app.receiver)
        .await;
    let id = message_with_media(&app).await;
    let get = |n: usize| {
        app.http
            .get(app.url(&format!("/api/v1/messages/{id}/parts/{n}/media")))
            .bearer_auth(REP_TOKEN)
            .send()
    };

    let image = get(1).await.unwrap();
    assert_eq!(image.status(), 200);
    assert_eq!(image.headers()["content-type"], "image/png");
    assert_eq!(
        image.headers()["content-disposition"],
        "inline; filename=\"photo.png\""
    );
    assert_eq!(image.bytes().await.unwrap().to_vec(), png);

    assert_eq!(get(2).await.unwrap().status(), 413, "over media.max_bytes");
    assert_eq!(
        get(3).await.unwrap().status(),
        404,
        "the platform no longer has it"
    );
    assert_eq!(
        get(0).await.unwrap().status(),
        404,
        "a text part has no media"
    );
    assert_eq!(get(9).await.unwrap().status(), 404, "no such part");
    let anonymous = app
        .http
        .get(app.url(&format!("/api/v1/messages/{id}/parts/1/media")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// Posts a message on `channel` whose parts point at `urls`; returns the message id.
async fn message_pointing_at(app: &TestApp, channel: &str, urls: &[String]) -> String {
    let parts: Vec<serde_json::Value> = urls
        .iter()
        .map(|url| json!({"type": "file", "media": {"url": url}}))
        .collect();
    let event = json!({"type": "message", "id": format!("{channel}-m"), "from": {"id": "ana"},
                       "parts": parts});
    assert_eq!(app.post_webhook(channel, &event).await.status(), 200);
    let conversation = app
        .conversations()
        .await
        .into_iter()
        .find(|c| c["channel_id"] == channel)
        .expect("a conversation on the channel");
    app.messages(conversation["id"].as_str().unwrap()).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn open_part(app: &TestApp, message: &str, n: usize) -> (u16, serde_json::Value) {
    app.api(
        reqwest::Method::GET,
        &format!("/api/v1/messages/{message}/parts/{n}/media"),
        None,
        Some(REP_TOKEN),
    )
    .await
}

#[tokio::test]
async fn media_urls_at_private_addresses_are_refused_unless_the_channel_allows_them() {
    let internal = wiremock::MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/files/a.pdf"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(b"%PDF".to_vec(), "application/pdf"))
        .mount(&internal)
        .await;
    let app = TestApp::spawn_with(Options {
        extra: format!(
            "[channels.intranet]\nkind = \"generic\"\nsecret = \"{}\"\n\
             outbound_url = \"https://app.example.test/outbound\"\nmedia_allow_private = true\n",
            crate::harness::secret()
        ),
        ..Options::default()
    })
    .await;
    let port = internal.address().port();
    let urls = [
        format!("{}/files/a.pdf", internal.uri()),
        format!("http://localhost:{port}/files/a.pdf"),
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/".to_owned(),
        format!("http://[::ffff:127.0.0.1]:{port}/files/a.pdf"),
        format!("http://2130706433:{port}/files/a.pdf"),
    ];

    // demo does not allow private addresses: every one is refused before any request.
    let refused = message_pointing_at(&app, "demo", &urls).await;
    for (n, url) in urls.iter().enumerate() {
        let (status, body) = open_part(&app, &refused, n).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("media_refused")),
            "{url}: {body}"
        );
    }
    assert!(
        internal.received_requests().await.unwrap().is_empty(),
        "nothing reached the internal server"
    );

    // intranet allows them: the file is fetched.
    let allowed = message_pointing_at(&app, "intranet", &urls[..2]).await;
    for n in 0..2 {
        let response = app
            .http
            .get(app.url(&format!("/api/v1/messages/{allowed}/parts/{n}/media")))
            .bearer_auth(REP_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.bytes().await.unwrap().as_ref(), b"%PDF");
    }
}

#[tokio::test]
async fn a_media_fetch_slower_than_media_timeout_ms_fails_with_502() {
    let app = TestApp::spawn_with(Options {
        extra: "[media]\ntimeout_ms = 300\n".into(),
        ..Options::default()
    })
    .await;
    // The app's own origin (outbound_url's) is configured, so it is fetched; slowly.
    Mock::given(method("GET"))
        .and(path("/media/slow.bin"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(vec![1u8; 10], "application/octet-stream")
                .set_delay(std::time::Duration::from_secs(5)),
        )
        .mount(&app.receiver)
        .await;
    let message = message_pointing_at(
        &app,
        "demo",
        &[format!("{}/media/slow.bin", app.receiver.uri())],
    )
    .await;
    let (status, body) = open_part(&app, &message, 0).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("media_fetch_failed")),
        "{body}"
    );
}

/// Replies as the rep on `conversation` with `parts`; the reply must be accepted.
async fn rep_reply(app: &TestApp, conversation: &str, parts: serde_json::Value) -> String {
    let (status, reply) = app
        .api(
            reqwest::Method::POST,
            &format!("/api/v1/conversations/{conversation}/messages"),
            Some(json!({ "parts": parts })),
            Some(REP_TOKEN),
        )
        .await;
    assert_eq!(status, 202, "{reply}");
    reply["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_rep_s_reply_cannot_make_the_daemon_read_the_twilio_api_with_our_credentials() {
    const ACCOUNT: &str = "ACaaaabbbbccccddddeeeeffff00001111";
    const TOKEN: &str = "twilio-auth-token";
    let twilio = wiremock::MockServer::start().await;
    // Twilio's message log: every conversation of the account, whichever inbox it is in.
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            br#"{"messages": [{"body": "another inbox's conversation"}]}"#.to_vec(),
            "application/json",
        ))
        .mount(&twilio)
        .await;
    let app = TestApp::spawn_with(Options {
        extra: format!(
            "[channels.sms]\nkind = \"twilio\"\naccount_sid = \"{ACCOUNT}\"\n\
             auth_token = \"{TOKEN}\"\nfrom = \"+14155550100\"\napi_base = \"{}\"\n",
            twilio.uri()
        ),
        ..Options::default()
    })
    .await;
    let form = fixture!("twilio/sms_text.form");
    let params: Vec<(String, String)> = serde_urlencoded::from_str(form).unwrap();
    let signature = channel_bridge::adapters::twilio::sign(
        TOKEN,
        "https://bridge.example.test/hooks/sms",
        &params,
    );
    let inbound = app
        .http
        .post(app.url("/hooks/sms"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(inbound.status(), 200);
    let conversation = app.only_conversation().await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let log = format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json");
    let reply = rep_reply(
        &app,
        &conversation,
        json!([
            {"type": "file", "media": {"platform_ref": log}},
            {"type": "file", "media": {"platform_ref":
                format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/%2e%2e/Messages.json")}},
            {"type": "file", "media": {"platform_ref":
                format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1/Media/%2E%2e/%2e%2E/%2e./Messages.json")}},
            {"type": "file", "media": {"url": format!("{}{log}", twilio.uri())}},
            {"type": "file", "media": {"url": format!("{}/2010-04-01/Accounts/{ACCOUNT}/Messages/%2e%2e/Messages.json", twilio.uri())}},
        ]),
    )
    .await;

    let expected = [
        (404, "media_unavailable"),
        (404, "media_unavailable"),
        (404, "media_unavailable"),
        (403, "media_refused"),
        (403, "media_refused"),
    ];
    for (n, (status, code)) in expected.into_iter().enumerate() {
        let (got, body) = open_part(&app, &reply, n).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "part {n}: {body}"
        );
    }
    let reads: Vec<String> = twilio
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method == wiremock::http::Method::GET)
        .map(|r| r.url.path().to_owned())
        .collect();
    assert!(
        reads.is_empty(),
        "a rep's media was read from Twilio's API: {reads:?}"
    );
}

#[tokio::test]
async fn a_rep_s_reply_cannot_make_the_daemon_read_the_in_house_app_s_origin() {
    let app = TestApp::spawn().await;
    Mock::given(method("GET"))
        .and(path("/internal/admin"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(b"secrets".to_vec(), "text/plain"))
        .mount(&app.receiver)
        .await;
    assert_eq!(
        app.post_webhook("demo", &crate::harness::text_event("m1", "ana", "hi"))
            .await
            .status(),
        200
    );
    let conversation = app.only_conversation().await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // outbound_url's origin is trusted for what the app itself sends, not for what a rep
    // writes.
    let reply = rep_reply(
        &app,
        &conversation,
        json!([{"type": "file", "media": {"url": format!("{}/internal/admin", app.receiver.uri())}}]),
    )
    .await;
    let (status, body) = open_part(&app, &reply, 0).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("media_refused")),
        "{body}"
    );
    let reads = app.receiver.received_requests().await.unwrap();
    assert!(
        !reads.iter().any(|r| r.url.path() == "/internal/admin"),
        "the rep's URL was fetched"
    );
}

#[tokio::test]
async fn a_redirect_from_a_configured_origin_to_a_private_address_is_refused() {
    let internal = wiremock::MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(b"internal".to_vec(), "text/plain"))
        .mount(&internal)
        .await;
    let app = TestApp::spawn().await;
    let redirect = |to: String| ResponseTemplate::new(302).insert_header("location", to.as_str());
    let targets = [
        format!("{}/secret", internal.uri()),
        format!("http://localhost:{}/secret", internal.address().port()),
        app.url("/metrics"),
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/".to_owned(),
    ];
    for (i, target) in targets.iter().enumerate() {
        Mock::given(method("GET"))
            .and(path(format!("/media/{i}")))
            .respond_with(redirect(target.clone()))
            .mount(&app.receiver)
            .await;
    }
    // A redirect within the configured origin is followed.
    Mock::given(method("GET"))
        .and(path("/media/moved"))
        .respond_with(redirect("/media/here.png".into()))
        .mount(&app.receiver)
        .await;
    Mock::given(method("GET"))
        .and(path("/media/here.png"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(b"png".to_vec(), "image/png"))
        .mount(&app.receiver)
        .await;
    let mut urls: Vec<String> = (0..targets.len())
        .map(|i| format!("{}/media/{i}", app.receiver.uri()))
        .collect();
    urls.push(format!("{}/media/moved", app.receiver.uri()));
    let message = message_pointing_at(&app, "demo", &urls).await;

    for (n, target) in targets.iter().enumerate() {
        let (status, body) = open_part(&app, &message, n).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("media_refused")),
            "a redirect to {target}: {body}"
        );
    }
    assert!(
        internal.received_requests().await.unwrap().is_empty(),
        "a redirect reached the internal server"
    );
    let (status, body) = open_part(&app, &message, targets.len()).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn proxied_media_is_never_rendered_as_a_page_by_the_rep_s_browser() {
    let app = TestApp::spawn().await;
    let files = [
        ("page.html", "text/html; charset=utf-8", "attachment"),
        ("drawing.svg", "image/svg+xml", "attachment"),
        ("notes.txt", "text/plain", "attachment"),
        ("photo.png", "image/png", "inline"),
        ("clip.mp4", "video/mp4", "inline"),
    ];
    for (name, content_type, _) in files {
        Mock::given(method("GET"))
            .and(path(format!("/media/{name}")))
            .respond_with(ResponseTemplate::new(200).set_body_raw(
                b"<script>alert(document.cookie)</script>".to_vec(),
                content_type,
            ))
            .mount(&app.receiver)
            .await;
    }
    // The part says image/png; the server says text/html: what is served decides.
    Mock::given(method("GET"))
        .and(path("/media/liar.png"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(b"<html>".to_vec(), "text/html"))
        .mount(&app.receiver)
        .await;
    let mut parts: Vec<serde_json::Value> = files
        .iter()
        .map(|(name, _, _)| {
            json!({"type": "file", "media": {
                "url": format!("{}/media/{name}", app.receiver.uri()), "filename": name}})
        })
        .collect();
    parts.push(json!({"type": "image", "media": {
        "url": format!("{}/media/liar.png", app.receiver.uri()), "mime_type": "image/png"}}));
    let event = json!({"type": "message", "id": "m1", "from": {"id": "ana"}, "parts": parts});
    assert_eq!(app.post_webhook("demo", &event).await.status(), 200);
    let conversation = app.only_conversation().await;
    let message = app.messages(conversation["id"].as_str().unwrap()).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut expected: Vec<(usize, String)> = files
        .iter()
        .enumerate()
        .map(|(n, (name, _, disposition))| (n, format!("{disposition}; filename=\"{name}\"")))
        .collect();
    expected.push((files.len(), "attachment".to_owned()));
    for (n, disposition) in expected {
        let response = app
            .http
            .get(app.url(&format!("/api/v1/messages/{message}/parts/{n}/media")))
            .bearer_auth(REP_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["x-content-type-options"],
            "nosniff",
            "part {n}"
        );
        assert_eq!(
            response.headers()["content-disposition"],
            disposition.as_str(),
            "part {n}"
        );
    }
}

#[tokio::test]
async fn a_part_index_that_is_not_a_part_number_gets_a_json_404() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.post_webhook("demo", &crate::harness::text_event("m1", "ana", "hi"))
            .await
            .status(),
        200
    );
    let conversation = app.only_conversation().await;
    let message = app.messages(conversation["id"].as_str().unwrap()).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in ["abc", "-1", "1.5", "99999999999999999999999", "%20"] {
        let (status, body) = app
            .api(
                reqwest::Method::GET,
                &format!("/api/v1/messages/{message}/parts/{n}/media"),
                None,
                Some(REP_TOKEN),
            )
            .await;
        assert_eq!(status, 404, "{n}: {body}");
        assert_eq!(body["error"]["code"], "not_found", "{n}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("part"),
            "{n}: {body}"
        );
    }
}
