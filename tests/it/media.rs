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
