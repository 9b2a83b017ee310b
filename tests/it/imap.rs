//! IMAP inbound against a real Dovecot on loopback (tests/it/dovecot.rs): a mail in the
//! mailbox becomes a message once, in order, flagged or moved after it is stored, across
//! restarts, reloads and a recreated folder; the password never shows; and the issue's
//! end-to-end path: a contact's e-mail answer lands in the ticket the rep wrote from.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::dovecot::{Dovecot, PASSWORD, mail};
use crate::harness::*;
use crate::smtp::SmtpSink;

const WAIT: Duration = Duration::from_secs(30);

/// The config of an app with the `mail` channel reading `dovecot`; `imap_extra` adds keys
/// to its imap block. IDLE delivers, so the poll interval is long: a message that
/// arrives at all did not wait for it.
fn options(sink: &SmtpSink, dovecot: &Dovecot, imap_extra: &str) -> Options {
    Options {
        extra: format!(
            "[smtp]\nurl = \"{}\"\nfrom = \"support@example.com\"\n\n\
             [channels.mail]\nkind = \"email\"\nsubject = \"Your parcel\"\n{}",
            sink.url(),
            dovecot.imap_block("mail", imap_extra)
        ),
        ..Options::default()
    }
}

async fn start(imap_extra: &str) -> (Dovecot, SmtpSink, TestApp) {
    let dovecot = Dovecot::start().await;
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with(options(&sink, &dovecot, imap_extra)).await;
    (dovecot, sink, app)
}

/// Every message stored on the `mail` channel, oldest first, as their texts.
async fn mail_texts(app: &TestApp) -> Vec<String> {
    let mut texts = Vec::new();
    for conversation in app.conversations().await {
        if conversation["channel_id"] != "mail" {
            continue;
        }
        let id = conversation["id"].as_str().unwrap();
        for message in app.messages(id).await {
            if message["direction"] == "inbound" {
                texts.push(
                    message["parts"][0]["text"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                );
            }
        }
    }
    texts.sort();
    texts
}

async fn wait_for_texts(app: &TestApp, expected: &[&str]) {
    wait_until(
        &format!("the mail channel holds {expected:?}"),
        WAIT,
        || async { mail_texts(app).await == expected },
    )
    .await;
}

#[tokio::test]
#[cfg_attr(
    not(imap_tests),
    ignore = "needs dovecot-imapd (apt-get install dovecot-imapd), then rebuild"
)]
async fn a_mail_in_the_mailbox_becomes_a_message_and_is_flagged_seen_after_it_is_stored() {
    let (dovecot, _sink, app) = start("poll_interval_secs = 1740").await;
    dovecot
        .append(
            "INBOX",
            &mail(
                "ana@example.com",
                "m1@example.com",
                None,
                "Where is my parcel?",
            ),
        )
        .await;
    wait_for_texts(&app, &["Where is my parcel?"]).await;
    wait_until("the stored mail is flagged seen", WAIT, || async {
        dovecot.messages("INBOX").await == [(1, true)]
    })
    .await;
    let conversation = app
        .conversations()
        .await
        .into_iter()
        .find(|c| c["channel_id"] == "mail")
        .unwrap();
    assert_eq!(
        conversation["contact"]["identifiers"][0],
        json!({"channel_id": "mail", "type": "email", "value": "ana@example.com"})
    );

    // The poller is in IDLE now, with a poll interval of 29 minutes: the second mail
    // comes in because the server said so.
    dovecot
        .append(
            "INBOX",
            &mail("ana@example.com", "m2@example.com", None, "Any news?"),
        )
        .await;
    wait_for_texts(&app, &["Any news?", "Where is my parcel?"]).await;
}

#[tokio::test]
#[cfg_attr(
    not(imap_tests),
    ignore = "needs dovecot-imapd (apt-get install dovecot-imapd), then rebuild"
)]
async fn a_mailbox_read_for_the_first_time_gives_its_unread_mail_only() {
    let dovecot = Dovecot::start().await;
    dovecot
        .append_seen(
            "INBOX",
            &mail("ana@example.com", "old@example.com", None, "read long ago"),
        )
        .await;
    dovecot
        .append(
            "INBOX",
            &mail("ana@example.com", "new@example.com", None, "not read yet"),
        )
        .await;
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with(options(&sink, &dovecot, "")).await;
    wait_for_texts(&app, &["not read yet"]).await;
    // From then on the cursor decides: a later mail comes in even if a person read it first.
    dovecot
        .append_seen(
            "INBOX",
            &mail("ana@example.com", "later@example.com", None, "read at once"),
        )
        .await;
    wait_for_texts(&app, &["not read yet", "read at once"]).await;
}

#[tokio::test]
#[cfg_attr(
    not(imap_tests),
    ignore = "needs dovecot-imapd (apt-get install dovecot-imapd), then rebuild"
)]
async fn restarts_and_a_disabled_channel_take_nothing_twice_and_skip_nothing() {
    let (dovecot, sink, app) = start("").await;
    dovecot
        .append(
            "INBOX",
            &mail("ana@example.com", "r1@example.com", None, "one"),
        )
        .await;
    wait_for_texts(&app, &["one"]).await;

    // Mail that arrives while the daemon is down is taken when it is back.
    let app = app.restart().await;
    dovecot
        .append(
            "INBOX",
            &mail("ana@example.com", "r2@example.com", None, "two"),
        )
        .await;
    wait_for_texts(&app, &["one", "two"]).await;

    // A reload disables the channel: its poller stops, mail waits in the mailbox.
    let mut disabled = options(&sink, &dovecot, "");
    disabled.extra = disabled
        .extra
        .replace("kind = \"email\"", "kind = \"email\"\nenabled = false");
    app.write_config(&disabled);
    app.reload().await;
    dovecot
        .append(
            "INBOX",
            &mail("bo@example.com", "r3@example.com", None, "three"),
        )
        .await;
    // Enabled again: the mail that waited comes in, and only it.
    app.write_config(&options(&sink, &dovecot, ""));
    app.reload().await;
    wait_for_texts(&app, &["one", "three", "two"]).await;
    wait_until("every mail is flagged seen", WAIT, || async {
        dovecot.messages("INBOX").await == [(1, true), (2, true), (3, true)]
    })
    .await;
    // Nothing more comes in after another restart either.
    let app = app.restart().await;
    dovecot
        .append(
            "INBOX",
            &mail("bo@example.com", "r4@example.com", None, "four"),
        )
        .await;
    wait_for_texts(&app, &["four", "one", "three", "two"]).await;
}

#[tokio::test]
#[cfg_attr(
    not(imap_tests),
    ignore = "needs dovecot-imapd (apt-get install dovecot-imapd), then rebuild"
)]
async fn a_recreated_folder_is_read_again_from_the_start_without_storing_twice() {
    let dovecot = Dovecot::start().await;
    dovecot.create("Support").await;
    let sink = SmtpSink::start().await;
    // A short poll interval: a poller in IDLE on a deleted folder hears nothing.
    let app = TestApp::spawn_with(options(
        &sink,
        &dovecot,
        "folder = \"Support\"\npoll_interval_secs = 1",
    ))
    .await;
    let first = mail("ana@example.com", "u1@example.com", None, "first");
    dovecot.append("Support", &first).await;
    wait_for_texts(&app, &["first"]).await;
    let before = dovecot.uidvalidity("Support").await;

    dovecot.delete("Support").await;
    // UIDVALIDITY is a timestamp in Dovecot: a new second gives a new one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    dovecot.create("Support").await;
    assert_ne!(dovecot.uidvalidity("Support").await, before);
    // The restored folder holds the first mail again (UID 1 of the new UIDVALIDITY),
    // and a new one.
    dovecot.append("Support", &first).await;
    dovecot
        .append(
            "Support",
            &mail("ana@example.com", "u2@example.com", None, "second"),
        )
        .await;
    wait_for_texts(&app, &["first", "second"]).await;
    wait_until("both are flagged seen", WAIT, || async {
        dovecot.messages("Support").await == [(1, true), (2, true)]
    })
    .await;
    assert_eq!(mail_texts(&app).await, ["first", "second"]);
}

#[tokio::test]
#[cfg_attr(
    not(imap_tests),
    ignore = "needs dovecot-imapd (apt-get install dovecot-imapd), then rebuild"
)]
async fn with_after_move_a_stored_mail_is_moved_to_the_folder() {
    let dovecot = Dovecot::start().await;
    dovecot.create("Processed").await;
    let sink = SmtpSink::start().await;
    let app =
        TestApp::spawn_with(options(&sink, &dovecot, "after = { move = \"Processed\" }")).await;
    dovecot
        .append(
            "INBOX",
            &mail("ana@example.com", "v1@example.com", None, "moved"),
        )
        .await;
    wait_for_texts(&app, &["moved"]).await;
    wait_until("the mail is in Processed, not INBOX", WAIT, || async {
        dovecot.messages("INBOX").await.is_empty() && dovecot.messages("Processed").await.len() == 1
    })
    .await;
}

#[tokio::test]
#[cfg_attr(
    not(imap_tests),
    ignore = "needs dovecot-imapd (apt-get install dovecot-imapd), then rebuild"
)]
async fn a_mail_that_cannot_be_read_is_left_unflagged_and_the_next_ones_come_in() {
    let (dovecot, _sink, app) = start("").await;
    // No From: nobody to thread it to.
    dovecot
        .append(
            "INBOX",
            "Subject: who?\r\nMessage-ID: <x1@example.com>\r\n\r\nno sender\r\n",
        )
        .await;
    dovecot
        .append(
            "INBOX",
            &mail("ana@example.com", "x2@example.com", None, "after it"),
        )
        .await;
    wait_for_texts(&app, &["after it"]).await;
    wait_until("only the stored one is flagged seen", WAIT, || async {
        dovecot.messages("INBOX").await == [(1, false), (2, true)]
    })
    .await;
    // It is not tried again: a restart leaves it as it is.
    let app = app.restart().await;
    dovecot
        .append(
            "INBOX",
            &mail("ana@example.com", "x3@example.com", None, "later"),
        )
        .await;
    wait_for_texts(&app, &["after it", "later"]).await;
    assert_eq!(
        dovecot.messages("INBOX").await,
        [(1, false), (2, true), (3, true)]
    );
}

/// Log lines written while it runs, as JSON.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
#[cfg_attr(
    not(imap_tests),
    ignore = "needs dovecot-imapd (apt-get install dovecot-imapd), then rebuild"
)]
async fn the_imap_password_never_appears_in_logs() {
    let logs = Captured::default();
    // The test's runtime is one thread: every task of this app logs here.
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(logs.clone())
            .finish(),
    );
    let dovecot = Dovecot::start().await;
    let sink = SmtpSink::start().await;
    // A server that refuses the login: the refusal is logged and retried.
    let mut refused = options(&sink, &dovecot, "");
    refused.extra = refused
        .extra
        .replace(PASSWORD, &format!("{PASSWORD}-but-wrong"));
    let app = TestApp::spawn_with(refused).await;
    let text = || String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    wait_until("the refused login is logged", WAIT, || async {
        text().contains("login refused")
    })
    .await;
    // Then the right one: a session runs and a message comes in.
    app.write_config(&options(&sink, &dovecot, ""));
    app.reload().await;
    dovecot
        .append(
            "INBOX",
            &mail("ana@example.com", "p1@example.com", None, "hi"),
        )
        .await;
    wait_for_texts(&app, &["hi"]).await;
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("channel_bridge_imap_errors_total{channel=\"mail\",reason=\"login\"}"),
        "{metrics}"
    );
    let logged = text();
    // Dovecot's own answer is what is logged with the refusal.
    assert!(logged.contains("AUTHENTICATIONFAILED"), "{logged}");
    assert!(
        !logged.contains(PASSWORD),
        "the password was logged:\n{logged}"
    );
    let channels = app.get("/api/v1/channels").await.to_string();
    assert!(!channels.contains(PASSWORD), "{channels}");
}

#[tokio::test]
#[cfg_attr(
    not(imap_tests),
    ignore = "needs dovecot-imapd (apt-get install dovecot-imapd), then rebuild"
)]
async fn a_contact_s_email_answer_to_a_rep_s_email_lands_in_the_same_ticket() {
    let (dovecot, sink, app) = start("poll_interval_secs = 1740").await;
    // A contact writes in on another channel (demo: generic) and gives their e-mail.
    let response = app
        .post_webhook("demo", &text_event("w1", "ana", "my parcel never arrived"))
        .await;
    assert_eq!(response.status(), 200);
    let first = app.only_conversation().await;
    let ticket = first["ticket_id"].as_str().unwrap().to_owned();
    // The rep answers by e-mail.
    let (status, body) = app
        .api(
            Method::POST,
            &format!("/api/v1/conversations/{}/messages", first["id"].as_str().unwrap()),
            Some(json!({"parts": [{"type": "text", "text": "We sent a new one"}], "via_channel": "mail"})),
            Some(REP_TOKEN),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let email_conversation = body["conversation_id"].as_str().unwrap().to_owned();
    app.drain_outbox().await;
    let sent = sink.received();
    assert_eq!(sent.len(), 1);
    let message_id = sent[0].header("Message-ID").expect("our Message-ID");
    let message_id = message_id.trim_matches(['<', '>']);

    // The contact answers that e-mail: it lands in the mailbox.
    dovecot
        .append(
            "INBOX",
            &mail(
                "ana@example.com",
                "answer-1@mail.example",
                Some(message_id),
                "Thanks, got it!",
            ),
        )
        .await;

    // The rep sees the answer in the same ticket, through the REST API.
    wait_until("the answer is in the e-mail conversation", WAIT, || async {
        app.messages(&email_conversation)
            .await
            .iter()
            .any(|m| m["direction"] == "inbound" && m["parts"][0]["text"] == "Thanks, got it!")
    })
    .await;
    let ticket: Value = app.get(&format!("/api/v1/tickets/{ticket}")).await;
    let conversations = ticket["conversation_ids"].as_array().unwrap();
    assert!(
        conversations.contains(&json!(email_conversation)),
        "{ticket}"
    );
    assert_eq!(conversations.len(), 2, "{ticket}");
}
