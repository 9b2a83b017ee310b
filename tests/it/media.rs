//! Inbound media opened by a rep: fetched from where the platform keeps it, capped.

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::harness::{Options, REP_TOKEN, TestApp};

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
