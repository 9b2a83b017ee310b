//! E-mail in through the providers' webhooks, end to end: a contact's answer to a mail we
//! sent lands in its conversation, a repeat is taken once, a bounce fails our mail and an
//! automatic reply does not reopen a closed ticket.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Options, REP_TOKEN, TestApp, text_event};

const TOKEN: &str = "pm-inbound-0123456789";

async fn app(sink: &crate::smtp::SmtpSink) -> TestApp {
    TestApp::spawn_with(Options {
        extra: format!(
            "[smtp]\nurl = \"{}\"\nfrom = \"support@example.com\"\n\n[channels.mail]\nkind = \"email\"\nsubject = \"Your parcel\"\nreply_to = \"support@example.com\"\npostmark = {{ token = \"{TOKEN}\" }}\n",
            sink.url()
        ),
        ..Options::default()
    })
    .await
}

async fn postmark(app: &TestApp, token: &str, body: &Value) -> u16 {
    reqwest::Client::new()
        .post(app.url(&format!("/hooks/mail?token={token}")))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

/// A Postmark inbound payload from ana answering `in_reply_to`, sent to `to`.
fn answer(id: &str, in_reply_to: &str, to: &str, text: &str) -> Value {
    json!({
        "FromFull": {"Email": "ana@example.com", "Name": "Ana"},
        "ToFull": [{"Email": to, "Name": ""}],
        "Subject": "Re: Your parcel",
        "MessageID": "pm-1",
        "TextBody": format!("{text}\n\nOn Fri, Support <support@example.com> wrote:\n> We sent a new one\n"),
        "Headers": [
            {"Name": "Message-ID", "Value": format!("<{id}>")},
            {"Name": "In-Reply-To", "Value": in_reply_to},
        ],
        "Attachments": [],
    })
}

#[tokio::test]
async fn an_answer_to_our_mail_lands_in_its_conversation_and_a_bounce_fails_our_mail() {
    let sink = crate::smtp::SmtpSink::start().await;
    let app = app(&sink).await;
    assert_eq!(
        app.post_webhook("demo", &text_event("m1", "ana", "my parcel never arrived"))
            .await
            .status(),
        200
    );
    let conv = app.conversations().await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = app
        .api(
            Method::POST,
            &format!("/api/v1/conversations/{conv}/messages"),
            Some(json!({"parts": [{"type": "text", "text": "We sent a new one"}], "via_channel": "mail"})),
            Some(REP_TOKEN),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let mail_conv = body["conversation_id"].as_str().unwrap().to_owned();
    let sent_id = body["id"].as_str().unwrap().to_owned();
    app.drain_outbox().await;
    let mails = sink.received();
    let message_id = mails[0].header("Message-ID").unwrap();
    assert_eq!(message_id, format!("<{sent_id}@example.com>"));
    assert_eq!(
        mails[0].header("Reply-To").unwrap(),
        format!("support+{mail_conv}@example.com")
    );

    // Without the token, or with a wrong one, nothing is taken.
    let reply = answer(
        "r1@mail.example",
        &message_id,
        "support@example.com",
        "Got it, thanks",
    );
    assert_eq!(postmark(&app, "wrong-token-000000", &reply).await, 401);
    assert_eq!(postmark(&app, TOKEN, &reply).await, 200);
    // Postmark retries: the same Message-ID is taken once.
    assert_eq!(postmark(&app, TOKEN, &reply).await, 200);
    let messages = app.messages(&mail_conv).await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[1]["parts"][0]["text"], "Got it, thanks");

    // A client that dropped the headers still reaches it through the plus address.
    let bare = answer(
        "r2@mail.example",
        "",
        &format!("support+{}@example.com", mail_conv.to_lowercase()),
        "One more thing",
    );
    assert_eq!(postmark(&app, TOKEN, &bare).await, 200);
    assert_eq!(app.messages(&mail_conv).await.len(), 3);

    // A DSN about our mail marks it failed with the diagnostic.
    let dsn = format!(
        "From: MAILER-DAEMON@mx.example.net\r\nTo: support@example.com\r\nSubject: Undelivered\r\nMessage-ID: <dsn-1@mx.example.net>\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {message_id}\r\n\r\n--b--\r\n"
    );
    assert_eq!(postmark(&app, TOKEN, &json!({"RawEmail": dsn})).await, 200);
    let sent = app.messages(&mail_conv).await;
    let ours = sent.iter().find(|m| m["id"] == sent_id).unwrap();
    assert_eq!(ours["delivery"]["status"], "failed", "{ours}");
    assert!(
        ours["delivery"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("550 5.1.1"),
        "{ours}"
    );
}

#[tokio::test]
async fn an_automatic_reply_does_not_reopen_a_closed_ticket() {
    let sink = crate::smtp::SmtpSink::start().await;
    let app = app(&sink).await;
    let first = answer(
        "a1@mail.example",
        "",
        "support@example.com",
        "Where is my parcel?",
    );
    assert_eq!(postmark(&app, TOKEN, &first).await, 200);
    let conv = app.conversations().await[0].clone();
    let ticket = conv["ticket_id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .api(
            Method::PATCH,
            &format!("/api/v1/tickets/{ticket}"),
            Some(json!({"status": "closed"})),
            Some(REP_TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut vacation = answer("a2@mail.example", "", "support@example.com", "I am away");
    vacation["Headers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"Name": "Auto-Submitted", "Value": "auto-replied"}));
    assert_eq!(postmark(&app, TOKEN, &vacation).await, 200);
    let ticket = app.get(&format!("/api/v1/tickets/{ticket}")).await;
    assert!(ticket["closed_at"].is_string(), "{ticket}");
    let conv_id = conv["id"].as_str().unwrap();
    assert_eq!(app.messages(conv_id).await.len(), 1);
}

#[tokio::test]
async fn an_attachment_is_served_from_the_stored_mail() {
    let sink = crate::smtp::SmtpSink::start().await;
    let app = app(&sink).await;
    let mut mail = answer(
        "att1@mail.example",
        "",
        "support@example.com",
        "The receipt",
    );
    // "%PDF-1.4 receipt" in base64.
    mail["Attachments"] = json!([{"Name": "receipt.pdf", "Content": "JVBERi0xLjQgcmVjZWlwdA==",
        "ContentType": "application/pdf", "ContentLength": 16}]);
    assert_eq!(postmark(&app, TOKEN, &mail).await, 200);
    let conv = app.conversations().await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let message = app.messages(&conv).await[0].clone();
    assert_eq!(message["parts"][1]["type"], "file", "{message}");
    let response = reqwest::Client::new()
        .get(app.url(&format!(
            "/api/v1/messages/{}/parts/1/media",
            message["id"].as_str().unwrap()
        )))
        .bearer_auth(REP_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/pdf"
    );
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("receipt.pdf")
    );
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        b"%PDF-1.4 receipt"
    );
}
