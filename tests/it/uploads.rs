//! `POST /api/v1/uploads`: a rep uploads a file, a reply names its URL as `media.url`,
//! and the platform fetches it from that URL without credentials.

use serde_json::{Value, json};

use crate::harness::{Options, REP_TOKEN, TestApp, text_event};

const PDF: &[u8] = b"%PDF-1.7\n\x00\x01\x02\xff binary body\n%%EOF";

async fn upload(
    app: &TestApp,
    query: &str,
    content_type: Option<&str>,
    body: &[u8],
    token: Option<&str>,
) -> (u16, Value) {
    let mut request = app
        .http
        .post(app.url(&format!("/api/v1/uploads{query}")))
        .body(body.to_vec());
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The path of an upload's URL, served by this test app whatever `public_url` says.
fn local(app: &TestApp, url: &str) -> String {
    let path = url
        .strip_prefix("https://bridge.example.test")
        .expect("the URL is under server.public_url");
    app.url(path)
}

#[tokio::test]
async fn an_uploaded_file_is_served_at_its_url_without_credentials_with_its_type_and_name() {
    let app = TestApp::spawn().await;
    let (status, created) = upload(
        &app,
        "?filename=invoice%202024.pdf",
        Some("application/pdf"),
        PDF,
        Some(REP_TOKEN),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert!(created["id"].as_str().unwrap().starts_with("upl_"));
    assert_eq!(created["content_type"], "application/pdf");
    assert_eq!(created["filename"], "invoice 2024.pdf");
    assert_eq!(created["size_bytes"], PDF.len());
    assert_eq!(created["part_type"], "file");
    let url = created["url"].as_str().unwrap();
    let token = url.rsplit('/').next().unwrap();
    assert_eq!(token.len(), 64, "32 random bytes: {url}");

    // No token: the platforms fetch it like this.
    let served = app.http.get(local(&app, url)).send().await.unwrap();
    assert_eq!(served.status(), 200);
    let header = |name: &str| served.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "application/pdf");
    assert_eq!(
        header("content-disposition"),
        "attachment; filename=\"invoice 2024.pdf\"; filename*=UTF-8''invoice%202024.pdf"
    );
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(served.bytes().await.unwrap().as_ref(), PDF);

    let (status, png) = upload(&app, "", Some("image/png"), b"\x89PNG\r\n", Some(REP_TOKEN)).await;
    assert_eq!((status, png["part_type"].as_str()), (201, Some("image")));
    let served = app
        .http
        .get(local(&app, png["url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(served.headers()["content-disposition"], "inline");

    for unknown in ["ab".repeat(32), "not-a-token".into(), "upl_1".into()] {
        let answer = app
            .http
            .get(app.url(&format!("/media/uploads/{unknown}")))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404, "{unknown}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{body}");
    }
}

#[tokio::test]
async fn uploads_are_refused_without_a_token_over_the_cap_for_programs_and_when_empty() {
    let app = TestApp::spawn_with(Options {
        extra: "[media]\nmax_upload_bytes = 64\n".into(),
        ..Options::default()
    })
    .await;
    let code = |body: &Value| {
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };

    let (status, _) = upload(&app, "", Some("application/pdf"), PDF, None).await;
    assert_eq!(status, 401);
    let (status, body) = upload(
        &app,
        "",
        Some("application/pdf"),
        &[b'x'; 65],
        Some(REP_TOKEN),
    )
    .await;
    assert_eq!(
        (status, code(&body).as_str()),
        (413, "upload_too_large"),
        "{body}"
    );
    let (status, body) = upload(
        &app,
        "",
        Some("application/pdf"),
        &[b'x'; 64],
        Some(REP_TOKEN),
    )
    .await;
    assert_eq!(status, 201, "exactly the cap is allowed: {body}");
    let (status, body) = upload(
        &app,
        "?filename=invoice.pdf",
        Some("application/octet-stream"),
        b"MZ\x90\x00\x03",
        Some(REP_TOKEN),
    )
    .await;
    assert_eq!(
        (status, code(&body).as_str()),
        (415, "upload_refused"),
        "{body}"
    );
    let (status, body) = upload(
        &app,
        "?filename=setup.exe",
        Some("application/pdf"),
        PDF,
        Some(REP_TOKEN),
    )
    .await;
    assert_eq!(
        (status, code(&body).as_str()),
        (415, "upload_refused"),
        "{body}"
    );
    let (status, body) = upload(&app, "", None, PDF, Some(REP_TOKEN)).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (415, "unsupported_media_type"),
        "{body}"
    );
    let (status, body) = upload(&app, "", Some("application/pdf"), b"", Some(REP_TOKEN)).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (422, "invalid_request"),
        "{body}"
    );
    let (status, body) = upload(
        &app,
        "?filename=..",
        Some("application/pdf"),
        PDF,
        Some(REP_TOKEN),
    )
    .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn a_reply_sends_an_uploaded_file_by_its_url_and_the_rep_opens_it_through_the_api() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.post_webhook("demo", &text_event("m1", "ana", "send the invoice"))
            .await
            .status(),
        200
    );
    let conversation = app.only_conversation().await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, created) = upload(
        &app,
        "?filename=invoice.pdf",
        Some("application/pdf"),
        PDF,
        Some(REP_TOKEN),
    )
    .await;
    let url = created["url"].as_str().unwrap().to_owned();

    let (status, reply) = app
        .api(
            reqwest::Method::POST,
            &format!("/api/v1/conversations/{conversation}/messages"),
            Some(json!({"parts": [
                {"type": "text", "text": "here it is"},
                {"type": created["part_type"], "media": {"url": url, "filename": "invoice.pdf",
                                                         "mime_type": "application/pdf"}}
            ]})),
            Some(REP_TOKEN),
        )
        .await;
    assert_eq!(status, 202, "{reply}");
    app.drain_outbox().await;
    let sent = app.delivered().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].to_string().contains(&url),
        "the platform gets the URL: {}",
        sent[0]
    );

    // The rep opens it through the media endpoint: from the store, not over the network.
    let id = reply["id"].as_str().unwrap();
    let opened = app
        .http
        .get(app.url(&format!("/api/v1/messages/{id}/parts/1/media")))
        .bearer_auth(REP_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 200);
    assert_eq!(opened.bytes().await.unwrap().as_ref(), PDF);
}
