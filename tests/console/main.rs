//! The web console in a real browser: headless Chromium driven over WebDriver
//! (chromedriver) against the real daemon on 127.0.0.1. Ignored (never passed) unless
//! `build.rs` found `chromium` and `chromedriver` (`cfg(browser_tests)`). Screenshots of
//! every page go to `target/console-screenshots/`.

#[path = "../it/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../it/smtp.rs"]
#[allow(dead_code)]
mod smtp;
#[path = "../support/mod.rs"]
mod support;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use harness::{ADMIN_TOKEN, Options, TestApp, items, secret, sha256, text_event, wait_until};
use reqwest::Method;
use serde_json::{Value, json};
use support::free_port;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const ALICE: &str = "alice-console-token";
const XSS: &str = "<img src=x onerror=alert(1)>";

/// Alice works the `sales` inbox; `help` is Bob's; `demo` and `flaky` are in the default
/// inbox every rep works. `flaky`'s platform fails until the test fixes it.
fn config(receiver: &str) -> String {
    let s = secret();
    format!(
        r#"
[[reps]]
id = "alice"
[[reps]]
id = "bob"
teams = ["support"]

[[api.tokens]]
name = "alice-laptop"
role = "rep"
rep = "alice"
sha256 = "{alice}"

[channels.sales]
kind = "generic"
secret = "{s}"
outbound_url = "{receiver}/outbound"
[channels.help]
kind = "generic"
secret = "{s}"
outbound_url = "{receiver}/outbound"
[channels.flaky]
kind = "generic"
secret = "{s}"
outbound_url = "{receiver}/flaky"

[inboxes.sales]
channels = ["sales"]
users = ["alice"]
[inboxes.support]
channels = ["help"]
teams = ["support"]

[pipelines.support]
statuses = [
  {{ id = "new" }}, {{ id = "waiting_on_us" }},
  {{ id = "solved", closed = true, requires = ["resolution"] }},
]
"#,
        alice = sha256(ALICE),
    )
}

/// chromedriver in a process group of its own, with the Chromium it starts: dropping it
/// (also when a test panics before closing its session) ends the whole group, so no
/// browser is left running on the machine.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn browser() -> (Driver, Client) {
    let port = free_port();
    let driver = Driver(
        Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let url = format!("http://127.0.0.1:{port}");
    wait_until("chromedriver answers", Duration::from_secs(20), || async {
        reqwest::get(format!("{url}/status")).await.is_ok()
    })
    .await;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--window-size=1280,900",
            // As Puppeteer and Lighthouse run it: a headless window counts as hidden,
            // and Chromium would otherwise throttle its frames and timers.
            "--disable-backgrounding-occluded-windows", "--disable-renderer-backgrounding",
            "--disable-background-timer-throttling"]}),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&url)
        .await
        .expect("a Chromium session");
    (driver, client)
}

async fn shot(client: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot saved");
}

async fn sign_in(client: &Client, app: &TestApp, token: &str) {
    client.goto(&app.url("/login")).await.expect("sign-in page");
    client
        .find(Locator::Css("#token"))
        .await
        .expect("token field")
        .send_keys(token)
        .await
        .expect("typed");
    client
        .find(Locator::Css(".signin button[type=submit]"))
        .await
        .expect("sign-in button")
        .click()
        .await
        .expect("signed in");
    client
        .wait()
        .for_element(Locator::Css("#inbox"))
        .await
        .expect("the inbox after sign-in");
}

async fn sign_out(client: &Client) {
    client
        .find(Locator::Css("form[action='/logout'] button"))
        .await
        .expect("sign-out button")
        .click()
        .await
        .expect("signed out");
    client
        .wait()
        .for_element(Locator::Css("#token"))
        .await
        .expect("the sign-in page after sign-out");
}

async fn text(client: &Client) -> String {
    client
        .find(Locator::Css("body"))
        .await
        .expect("a body")
        .text()
        .await
        .expect("its text")
}

async fn js(client: &Client, script: &str) -> Value {
    client.execute(script, vec![]).await.expect("script runs")
}

async fn conversation_of(app: &TestApp, channel: &str) -> String {
    let page = app
        .get(&format!("/api/v1/conversations?channel={channel}"))
        .await;
    items(page)[0]["id"]
        .as_str()
        .expect("a conversation")
        .to_owned()
}

fn event(id: &str, user: &str, name: &str, text: &str) -> Value {
    let mut e = text_event(id, user, text);
    e["from"]["name"] = json!(name);
    e
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(browser_tests),
    ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver), then rebuild"
)]
async fn a_rep_and_an_admin_work_every_page_in_a_real_browser() {
    let receiver = wiremock::MockServer::start().await;
    let extra = config(&receiver.uri());
    let app = TestApp::spawn_with(Options {
        extra,
        retry_schedule_ms: vec![0, 50],
        poll_ms: 200,
        ..Options::default()
    })
    .await;
    // `demo` sends to the harness's receiver; `sales`, `help` and `flaky` to `receiver`,
    // where `flaky` finds nothing (404) until the platform is back.
    for server in [&app.receiver, &receiver] {
        Mock::given(method("POST"))
            .and(path("/outbound"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "x"})))
            .mount(server)
            .await;
    }
    // A contact named like an attack on Alice's inbox, one on Bob's she must not open,
    // and one on the channel every rep works.
    assert!(
        app.post_webhook("sales", &event("s1", "u1", XSS, "hello"))
            .await
            .status()
            .is_success()
    );
    assert!(
        app.post_webhook("help", &event("h1", "u2", "Hidden Hank", "private"))
            .await
            .status()
            .is_success()
    );
    assert!(
        app.post_webhook("demo", &event("d1", "u3", "Dana", "my order is late"))
            .await
            .status()
            .is_success()
    );
    assert!(
        app.post_webhook("demo", &event("d2", "u3", "Dana", "order A-7"))
            .await
            .status()
            .is_success()
    );
    // Every part kind, one named like an attack, with the image served by the platform.
    let png: Vec<u8> = vec![
        137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 1, 0, 0, 0, 1, 8, 4,
        0, 0, 0, 181, 28, 12, 2, 0, 0, 0, 11, 73, 68, 65, 84, 120, 218, 99, 100, 96, 0, 0, 0, 6, 0,
        2, 48, 129, 208, 47, 0, 0, 0, 0, 73, 69, 78, 68, 174, 66, 96, 130,
    ];
    Mock::given(method("GET"))
        .and(path("/media/dot.png"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(png, "image/png"))
        .mount(&app.receiver)
        .await;
    let media = |name: &str| format!("{}/media/{name}", app.receiver.uri());
    let parts = json!({
        "type": "message", "id": "d-parts", "from": {"id": "u3", "name": "Dana"},
        "parts": [
            {"type": "image", "media": {"url": media("dot.png"), "mime_type": "image/png"}, "caption": "a dot"},
            {"type": "file", "media": {"url": media("x.pdf"), "filename": XSS}},
            {"type": "audio", "media": {"url": media("v.ogg")}},
            {"type": "location", "latitude": 52.52, "longitude": 13.405, "name": "Office"},
            {"type": "contact", "name": "Carl", "phones": ["+49301234"]},
            {"type": "poll", "question": "Tea or coffee?"}
        ]
    });
    assert!(app.post_webhook("demo", &parts).await.status().is_success());
    let help = conversation_of(&app, "help").await;
    let demo = conversation_of(&app, "demo").await;

    let (_driver, client) = browser().await;

    // A rep signs in and sees their inbox; the attack name is text, no image element.
    sign_in(&client, &app, ALICE).await;
    let page = text(&client).await;
    assert!(page.contains(XSS), "the name shows as text: {page}");
    assert!(
        !page.contains("Hidden Hank"),
        "Bob's inbox stays out of Alice's list"
    );
    assert_eq!(
        js(
            &client,
            "return document.querySelectorAll('img[src=x]').length"
        )
        .await,
        json!(0)
    );
    shot(&client, "inbox-rep").await;

    // A webhook arrives and appears without a reload.
    client
        .wait()
        .for_element(Locator::Css("html[data-live=connected]"))
        .await
        .expect("the live stream connects");
    assert!(
        app.post_webhook("demo", &event("d3", "u4", "Live Larry", "anyone there?"))
            .await
            .status()
            .is_success()
    );
    wait_until(
        "the new conversation appears live",
        Duration::from_secs(10),
        || async { text(&client).await.contains("Live Larry") },
    )
    .await;

    // Another inbox's conversation is a 404 page.
    client
        .goto(&app.url(&format!("/c/{help}")))
        .await
        .expect("navigates");
    let page = text(&client).await;
    assert!(
        page.contains("Not found") && !page.contains("private"),
        "{page}"
    );
    shot(&client, "not-found").await;

    // The rep replies to a chosen message; its delivery turns sent.
    let messages = app.messages(&demo).await;
    let chosen = messages[0]["id"].as_str().expect("a message id").to_owned();
    client
        .goto(&app.url(&format!("/c/{demo}")))
        .await
        .expect("navigates");
    // Every part kind renders, the image through the media endpoint, names as text.
    wait_until("the image loads", Duration::from_secs(10), || async {
        js(
            &client,
            "const i = document.querySelector('figure img[src^=\"/console/media/\"]'); \
             return !!i && i.complete && i.naturalWidth === 1",
        )
        .await
            == json!(true)
    })
    .await;
    assert_eq!(count(&client, "img[src=x]").await, json!(0));
    assert_eq!(count(&client, "figure audio[controls]").await, json!(1));
    let file = js(
        &client,
        "return document.querySelector('.file a[download]').textContent",
    )
    .await;
    assert!(file.as_str().is_some_and(|f| f.contains(XSS)), "{file}");
    let page = text(&client).await;
    for shown in [
        "52.520000, 13.405000",
        "Carl",
        "+49301234",
        "Unsupported message type: poll",
    ] {
        assert!(page.contains(shown), "{shown} in {page}");
    }
    client
        .find(Locator::Css(&format!(
            "a.reply-to[data-reply-to='{chosen}']"
        )))
        .await
        .expect("reply-to link")
        .click()
        .await
        .expect("chosen");
    client
        .find(Locator::Css("#reply-text"))
        .await
        .expect("reply box")
        .send_keys("It ships today.")
        .await
        .expect("typed");
    client
        .find(Locator::Css("#reply-form button[type=submit]"))
        .await
        .expect("send")
        .click()
        .await
        .expect("sent");
    // Live: the page is not reloaded, the delivery event refreshes the thread.
    wait_until(
        "the delivery shows sent without a reload",
        Duration::from_secs(15),
        || async { count(&client, "[data-delivery=sent]").await != json!(0) },
    )
    .await;
    let reply = app
        .messages(&demo)
        .await
        .into_iter()
        .find(|m| m["direction"] == "outbound")
        .expect("the reply is stored");
    assert_eq!(reply["reply_to"], json!(chosen));

    // A comment with a mention.
    client
        .find(Locator::Css("section.comment textarea"))
        .await
        .expect("comment box")
        .send_keys("@bob can you check the refund?")
        .await
        .expect("typed");
    client
        .find(Locator::Css("section.comment button[type=submit]"))
        .await
        .expect("add comment")
        .click()
        .await
        .expect("added");
    if client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("li.msg.comment mark.mention"))
        .await
        .is_err()
    {
        panic!(
            "the mention is not marked: {}",
            client.source().await.unwrap_or_default()
        );
    }

    // A conditional status asks for its properties before sending.
    client
        .find(Locator::Css("#reply-status"))
        .await
        .expect("status picker")
        .select_by_value("solved")
        .await
        .expect("chosen");
    client
        .find(Locator::Css("#reply-text"))
        .await
        .expect("reply box")
        .send_keys("Solved, thanks!")
        .await
        .expect("typed");
    client
        .find(Locator::Css("#reply-form button[type=submit]"))
        .await
        .expect("send")
        .click()
        .await
        .expect("clicked");
    let hint = client
        .find(Locator::Css("#reply-hint"))
        .await
        .expect("hint")
        .text()
        .await
        .expect("hint text");
    assert!(
        hint.contains("resolution"),
        "asked for the property: {hint:?}"
    );
    shot(&client, "conversation-asks-properties").await;
    client
        .find(Locator::Css("input[name='prop.resolution']"))
        .await
        .expect("the property field")
        .send_keys("refunded")
        .await
        .expect("typed");
    client
        .find(Locator::Css("#reply-form button[type=submit]"))
        .await
        .expect("send")
        .click()
        .await
        .expect("sent");
    wait_until("the ticket is solved", Duration::from_secs(10), || async {
        js(
            &client,
            "return document.getElementById('ticket-status').textContent",
        )
        .await
            == json!("solved")
    })
    .await;
    shot(&client, "conversation").await;
    sign_out(&client).await;

    // An admin: a dead letter on the operations page is redriven once the platform is back.
    let flaky_hook = event("f1", "u5", "Fay", "hi");
    assert!(
        app.post_webhook("flaky", &flaky_hook)
            .await
            .status()
            .is_success()
    );
    let flaky = conversation_of(&app, "flaky").await;
    let (status, _) = app
        .api(
            Method::POST,
            &format!("/api/v1/conversations/{flaky}/messages"),
            Some(json!({"parts": [{"type": "text", "text": "hello Fay"}]})),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 202);
    wait_until("the delivery is dead", Duration::from_secs(20), || async {
        !items(app.get("/api/v1/deliveries?state=dead").await).is_empty()
    })
    .await;
    // The platform is back.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "x"})))
        .mount(&receiver)
        .await;
    sign_in(&client, &app, ADMIN_TOKEN).await;
    shot(&client, "inbox-admin").await;
    // On the conversation, the failed reply shows its error and, for an admin, Retry.
    client
        .goto(&app.url(&format!("/c/{flaky}")))
        .await
        .expect("navigates");
    assert_eq!(count(&client, "[data-delivery=failed]").await, json!(1));
    let delivery = client
        .find(Locator::Css(".delivery"))
        .await
        .expect("the delivery line")
        .text()
        .await
        .expect("its text");
    assert!(
        delivery.contains("404") && delivery.contains("Retry"),
        "{delivery}"
    );
    shot(&client, "conversation-failed-delivery").await;
    client.goto(&app.url("/ops")).await.expect("operations");
    let page = text(&client).await;
    assert!(
        page.contains("Dead letters") && page.contains("flaky"),
        "{page}"
    );
    // Exact figures per channel: flaky's one dead letter, its error, its last inbound.
    let cell = |channel: &str, class: &str| {
        let c = client.clone();
        let script = format!(
            "return document.querySelector(\"tr[data-channel='{channel}'] td.{class}\").textContent"
        );
        async move { js(&c, &script).await }
    };
    assert_eq!(cell("flaky", "dead").await, json!("1"));
    assert_eq!(cell("flaky", "pending").await, json!("0"));
    assert_eq!(cell("help", "dead").await, json!("0"));
    assert_ne!(cell("flaky", "last-inbound").await, json!("never"));
    assert!(
        page.contains("404"),
        "the newest delivery error is shown: {page}"
    );
    shot(&client, "operations").await;
    client
        .find(Locator::Css("#dead-letters button[type=submit]"))
        .await
        .expect("redrive button")
        .click()
        .await
        .expect("redriven");
    wait_until(
        "the redriven delivery is sent",
        Duration::from_secs(15),
        || async {
            app.messages(&flaky)
                .await
                .iter()
                .any(|m| m["direction"] == "outbound" && m["delivery"]["status"] == "sent")
        },
    )
    .await;
    client
        .goto(&app.url(&format!("/c/{help}")))
        .await
        .expect("navigates");
    assert!(
        text(&client).await.contains("Hidden Hank"),
        "admins open every inbox"
    );
    client
        .goto(&app.url(&format!("/c/{flaky}")))
        .await
        .expect("navigates");
    shot(&client, "conversation-admin").await;
    client.close().await.expect("browser closes");
}

/// Presses one key (a character, or a [`fantoccini::key::Key`] as a char) on the page.
async fn press(client: &Client, key: char) {
    use fantoccini::actions::{InputSource, KeyAction, KeyActions};
    let keys = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: key })
        .then(KeyAction::Up { value: key });
    client.perform_actions(keys).await.expect("key pressed");
}

async fn count(client: &Client, selector: &str) -> Value {
    js(
        client,
        &format!("return document.querySelectorAll({selector:?}).length"),
    )
    .await
}

async fn click(client: &Client, selector: &str) {
    client
        .find(Locator::Css(selector))
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {selector}: {e}"));
}

async fn path_now(client: &Client) -> String {
    client.current_url().await.expect("a URL").path().to_owned()
}

/// Alice's inbox by keyboard with its markers and her presence; the sidebar's priority;
/// the reply box's "Via" switch to e-mail; the 403 page of the operations page for a rep;
/// the XSS name as text on the conversation page too.
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(browser_tests),
    ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver), then rebuild"
)]
async fn a_rep_works_the_inbox_by_keyboard_with_markers_presence_priority_and_email() {
    let sink = smtp::SmtpSink::start().await;
    let receiver = wiremock::MockServer::start().await;
    let extra = format!(
        "{}\n[smtp]\nurl = \"{}\"\nfrom = \"support@example.com\"\n\n[channels.mail]\nkind = \"email\"\nsubject = \"Your order\"\n",
        config(&receiver.uri()),
        sink.url()
    );
    let app = TestApp::spawn_with(Options {
        extra,
        poll_ms: 200,
        ..Options::default()
    })
    .await;
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "x"})))
        .mount(&app.receiver)
        .await;
    for (channel, id, user, name, text) in [
        ("demo", "k1", "u1", "Older Olga", "first"),
        ("sales", "k2", "u2", XSS, "second"),
    ] {
        assert!(
            app.post_webhook(channel, &event(id, user, name, text))
                .await
                .status()
                .is_success()
        );
    }
    let olga = conversation_of(&app, "demo").await;
    let xss = conversation_of(&app, "sales").await;

    let (_driver, client) = browser().await;
    client.goto(&app.url("/login")).await.expect("sign-in page");
    shot(&client, "sign-in").await;
    sign_in(&client, &app, ALICE).await;

    // Both are new to Alice and both wait on us.
    assert_eq!(count(&client, "#rows tr.row.unread").await, json!(2));
    assert_eq!(count(&client, "#rows tr.row.waiting").await, json!(2));
    assert!(text(&client).await.contains("waiting on us"));
    shot(&client, "inbox-markers").await;

    // Presence: offline until she goes online.
    let now = |c: &Client| {
        let c = c.clone();
        async move {
            js(
                &c,
                "return document.querySelector('.presence-now').dataset.status",
            )
            .await
        }
    };
    assert_eq!(now(&client).await, json!("offline"));
    click(&client, ".presence button[value=online]").await;
    wait_until(
        "the toggle shows online",
        Duration::from_secs(10),
        || async { now(&client).await == json!("online") },
    )
    .await;
    let reps = items(app.get("/api/v1/reps").await);
    let alice = reps.iter().find(|r| r["id"] == "alice").expect("alice");
    assert_eq!(alice["status"], "online", "{alice}");
    assert_eq!(path_now(&client).await, "/inbox", "back where she was");

    // j/k move the selection; Enter opens the selected conversation (the newest first).
    press(&client, 'j').await;
    press(&client, 'j').await;
    press(&client, 'k').await;
    let selected = js(
        &client,
        "return document.querySelector('#rows tr.row.selected').dataset.id",
    )
    .await;
    assert_eq!(selected, json!(xss), "the first row, the newest");
    press(&client, fantoccini::key::Key::Enter.into()).await;
    wait_until("Enter opens it", Duration::from_secs(10), || async {
        path_now(&client).await == format!("/c/{xss}")
    })
    .await;
    // The attack name is text here too: title, contact card, reply-to picker.
    let page = text(&client).await;
    assert!(page.contains(XSS), "{page}");
    assert_eq!(count(&client, "img[src=x]").await, json!(0));
    // `r` on the conversation focuses the reply box.
    press(&client, 'r').await;
    assert_eq!(
        js(&client, "return document.activeElement.id").await,
        json!("reply-text")
    );

    // Opened: read; Olga's is still unread; a new message from the contact makes it
    // unread again, live.
    client.goto(&app.url("/inbox")).await.expect("inbox");
    client
        .wait()
        .for_element(Locator::Css("html[data-live=connected]"))
        .await
        .expect("the live stream connects");
    let unread = |id: &str| format!("#rows tr.row.unread[data-id='{id}']");
    assert_eq!(count(&client, &unread(&xss)).await, json!(0));
    assert_eq!(count(&client, &unread(&olga)).await, json!(1));
    assert!(
        app.post_webhook("sales", &event("k3", "u2", XSS, "again"))
            .await
            .status()
            .is_success()
    );
    wait_until(
        "it is unread again, live",
        Duration::from_secs(10),
        || async { count(&client, &unread(&xss)).await == json!(1) },
    )
    .await;

    // `r` in the inbox opens the selected conversation with the reply box focused.
    press(&client, 'j').await;
    press(&client, 'j').await;
    press(&client, 'r').await;
    wait_until("r opens the reply box", Duration::from_secs(10), || async {
        path_now(&client).await == format!("/c/{olga}")
    })
    .await;
    wait_until(
        "the reply box has the focus",
        Duration::from_secs(5),
        || async { js(&client, "return document.activeElement.id").await == json!("reply-text") },
    )
    .await;

    // An edited message says so and shows its earlier text on demand; a retracted one
    // says it was retracted.
    for hook in [
        json!({"type": "edit", "id": "k1", "parts": [{"type": "text", "text": "first, corrected"}]}),
        event("k4", "u1", "Older Olga", "oops, wrong chat"),
        json!({"type": "retract", "id": "k4"}),
    ] {
        assert!(app.post_webhook("demo", &hook).await.status().is_success());
    }
    client.refresh().await.expect("reloads");
    assert_eq!(count(&client, "li.msg span.tag.edited").await, json!(1));
    assert_eq!(
        count(&client, "li.msg.retracted .retracted-note").await,
        json!(1)
    );
    click(&client, "details.earlier summary").await;
    let earlier = client
        .find(Locator::Css("details.earlier .revision"))
        .await
        .expect("the earlier version")
        .text()
        .await
        .expect("its text");
    assert!(earlier.contains("first"), "{earlier}");
    let page = text(&client).await;
    assert!(
        page.contains("first, corrected") && page.contains("Retracted by the sender"),
        "{page}"
    );
    shot(&client, "conversation-edited-retracted").await;

    // The ticket's priority, from the sidebar, into the history.
    client
        .find(Locator::Css("#ticket-priority"))
        .await
        .expect("priority picker")
        .select_by_value("urgent")
        .await
        .expect("chosen");
    click(&client, "form[action^='/t/'] button[type=submit]").await;
    wait_until(
        "the priority shows urgent",
        Duration::from_secs(10),
        || async {
            js(
                &client,
                "return (document.getElementById('priority') || {}).textContent",
            )
            .await
                == json!("urgent")
        },
    )
    .await;
    assert!(text(&client).await.contains("priority_changed"));

    // Via: the reply goes out by e-mail to the contact, in the same ticket.
    client
        .find(Locator::Css("select[name=via_channel]"))
        .await
        .expect("via picker")
        .select_by_value("mail")
        .await
        .expect("chosen");
    client
        .find(Locator::Css("#reply-text"))
        .await
        .expect("reply box")
        .send_keys("Sent by e-mail too.")
        .await
        .expect("typed");
    click(&client, "#reply-form button[type=submit]").await;
    wait_until("the e-mail is sent", Duration::from_secs(15), || async {
        sink.received()
            .iter()
            .any(|m| m.body().contains("Sent by e-mail too."))
    })
    .await;
    let ticket = app.get(&format!("/api/v1/conversations/{olga}")).await["ticket_id"].clone();
    let ticket = app
        .get(&format!(
            "/api/v1/tickets/{}",
            ticket.as_str().expect("ticket id")
        ))
        .await;
    assert_eq!(ticket["conversation_ids"].as_array().map(Vec::len), Some(2));
    shot(&client, "conversation-via-email").await;

    // A message from the contact appears in the open conversation without a reload, and
    // having seen it there, it is read.
    client
        .wait()
        .for_element(Locator::Css("html[data-live=connected]"))
        .await
        .expect("the live stream connects");
    assert!(
        app.post_webhook("demo", &event("k5", "u1", "Older Olga", "thanks, got it"))
            .await
            .status()
            .is_success()
    );
    wait_until(
        "the message appears live",
        Duration::from_secs(10),
        || async { text(&client).await.contains("thanks, got it") },
    )
    .await;
    client.goto(&app.url("/inbox")).await.expect("inbox");
    assert_eq!(count(&client, &unread(&olga)).await, json!(0));

    // The operations page is for admins: a rep gets the 403 page.
    client.goto(&app.url("/ops")).await.expect("navigates");
    let page = text(&client).await;
    assert!(page.contains("Not allowed"), "{page}");
    assert!(!page.contains("Dead letters"), "{page}");
    shot(&client, "forbidden").await;
    client.close().await.expect("browser closes");
}

/// Signs in over plain HTTP as a browser would; answers the session cookie.
async fn session_cookie(app: &TestApp, token: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = http
        .get(app.url("/login"))
        .send()
        .await
        .expect("sign-in page");
    let nonce_cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("cb_login="))
        .and_then(|c| c.split(';').next())
        .expect("the sign-in form's cookie")
        .to_owned();
    let nonce = nonce_cookie.trim_start_matches("cb_login=").to_owned();
    let signed = http
        .post(app.url("/login"))
        .header("cookie", nonce_cookie)
        .form(&[("_csrf", nonce.as_str()), ("token", token)])
        .send()
        .await
        .expect("signed in");
    signed
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("cb_session="))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The inbox's first page with 10,000 conversations, against the API's list of the same
/// page in the same run; the biggest page (a conversation at its 200-message cap); the
/// inbox's first contentful paint in Chromium against a near-empty page's. Prints the
/// figures (BENCHMARKS.md); asserts nothing on time.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement: cargo test --test console -- --ignored --nocapture inbox_first_paint"]
async fn inbox_first_paint_with_10000_conversations() {
    const CONVERSATIONS: usize = 10_000;
    const RUNS: usize = 40;
    let app = TestApp::spawn().await;
    let mut pending = futures_util::stream::FuturesUnordered::new();
    use futures_util::StreamExt;
    for i in 0..CONVERSATIONS {
        let app = &app;
        pending.push(async move {
            let e = event(
                &format!("p{i}"),
                &format!("user{i}"),
                &format!("Contact {i}"),
                "where is my order?",
            );
            assert!(app.post_webhook("demo", &e).await.status().is_success());
        });
        if pending.len() >= 16 {
            pending.next().await;
        }
    }
    while pending.next().await.is_some() {}
    let cookie = session_cookie(&app, ADMIN_TOKEN).await;
    let http = reqwest::Client::new();
    let mut console = Vec::new();
    let mut api = Vec::new();
    let mut page_bytes = 0;
    for _ in 0..RUNS {
        let t = std::time::Instant::now();
        let body = http
            .get(app.url("/inbox"))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("inbox")
            .text()
            .await
            .expect("page");
        console.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(body.contains("Contact "), "the inbox lists conversations");
        page_bytes = body.len();
        let t = std::time::Instant::now();
        let _ = http
            .get(app.url("/api/v1/conversations?limit=50"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("list")
            .bytes()
            .await
            .expect("body");
        api.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (c, a) = (median(console), median(api));
    println!(
        "inbox with {CONVERSATIONS} conversations: GET /inbox median {c:.2} ms ({page_bytes} bytes), \
         GET /api/v1/conversations median {a:.2} ms, ratio {:.2}; assets: console.css {} bytes, console.js {} bytes",
        c / a,
        channel_bridge::console::CSS.len(),
        channel_bridge::console::JS.len(),
    );

    // The biggest page: a conversation at its 200-message cap, with its sidebar.
    for i in 0..200 {
        let text = format!("message {i}: where is my order? It was due on Monday.");
        let e = event(&format!("long{i}"), "long-user", "Lena Long", &text);
        assert!(app.post_webhook("demo", &e).await.status().is_success());
    }
    let long = conversation_of(&app, "demo").await;
    let biggest = http
        .get(app.url(&format!("/c/{long}")))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("conversation")
        .text()
        .await
        .expect("page")
        .len();
    println!("biggest page: a conversation with 200 messages, {biggest} bytes of HTML");

    // First paint in Chromium, from navigation start (request, HTML, the stylesheet).
    if !cfg!(browser_tests) {
        return;
    }
    let (_driver, client) = browser().await;
    sign_in(&client, &app, ADMIN_TOKEN).await;
    let mut inbox = Vec::new();
    let mut received = Vec::new();
    let mut baseline = Vec::new();
    for _ in 0..RUNS / 2 {
        let (fcp, response_end) = first_paint(&client, &app.url("/inbox")).await;
        inbox.push(fcp);
        received.push(response_end);
        // The same shell and stylesheet with next to nothing in it: what the browser
        // itself takes to paint on this machine.
        baseline.push(first_paint(&client, &app.url("/c/conv_x")).await.0);
    }
    let worst = inbox.iter().copied().fold(0.0, f64::max);
    println!(
        "inbox first contentful paint in Chromium: median {:.1} ms, worst {worst:.1} ms of {} \
         (the whole page received at {:.1} ms median); a near-empty page of the console \
         (the 404 page): median {:.1} ms",
        median(inbox.clone()),
        inbox.len(),
        median(received),
        median(baseline),
    );
    client.close().await.expect("browser closes");
}

/// Opens `url` and answers its first contentful paint and when its response ended, both
/// in ms from navigation start.
async fn first_paint(client: &Client, url: &str) -> (f64, f64) {
    client.goto(url).await.expect("navigates");
    // Paint entries reach observers after the frame: wait for the one wanted.
    let fcp = client
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             new PerformanceObserver(function (list, o) { \
               const e = list.getEntries().find(function (x) { return x.name === 'first-contentful-paint'; }); \
               if (e) { o.disconnect(); done(e.startTime); } \
             }).observe({ type: 'paint', buffered: true }); \
             setTimeout(function () { done(null); }, 5000);",
            vec![],
        )
        .await
        .expect("script runs");
    let response_end = js(
        client,
        "return performance.getEntriesByType('navigation')[0].responseEnd",
    )
    .await;
    (
        fcp.as_f64()
            .expect("Chromium reports first-contentful-paint"),
        response_end.as_f64().expect("navigation timing"),
    )
}

/// The reply box's "attach a file": Alice picks a file from disk, it is uploaded at once,
/// she sends the reply, and the platform gets a URL that serves exactly those bytes to
/// anyone (the platforms fetch reply media without credentials).
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(browser_tests),
    ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver), then rebuild"
)]
async fn a_rep_attaches_a_file_from_disk_and_the_platform_gets_a_url_serving_its_bytes() {
    let receiver = wiremock::MockServer::start().await;
    let app = TestApp::spawn_with(Options {
        extra: config(&receiver.uri()),
        retry_schedule_ms: vec![0, 50],
        poll_ms: 200,
        ..Options::default()
    })
    .await;
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "x"})))
        .mount(&receiver)
        .await;
    assert!(
        app.post_webhook(
            "sales",
            &event("s1", "u1", "Ana", "can I have the invoice?")
        )
        .await
        .status()
        .is_success()
    );
    let sales = conversation_of(&app, "sales").await;
    // Every byte value, so nothing on the way may treat the file as text.
    let bytes: Vec<u8> = b"%PDF-1.7\n".iter().copied().chain(0..=255u8).collect();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = dir.path().join("invoice 7.pdf");
    std::fs::write(&file, &bytes).expect("the file is written");

    let (_driver, client) = browser().await;
    sign_in(&client, &app, ALICE).await;
    client
        .goto(&app.url(&format!("/c/{sales}")))
        .await
        .expect("navigates");
    client
        .find(Locator::Css("#attach-file"))
        .await
        .expect("the file input")
        .send_keys(file.to_str().expect("a UTF-8 path"))
        .await
        .expect("the file is chosen");
    wait_until("the file is uploaded", Duration::from_secs(15), || async {
        count(&client, "#attach-status[data-state=attached]").await != json!(0)
    })
    .await;
    let status = text(&client).await;
    assert!(status.contains("Attached: invoice 7.pdf"), "{status}");
    client
        .find(Locator::Css("#reply-text"))
        .await
        .expect("reply box")
        .send_keys("Here is your invoice.")
        .await
        .expect("typed");
    shot(&client, "reply-attachment").await;
    click(&client, "#reply-form button[type=submit]").await;
    wait_until(
        "the delivery shows sent",
        Duration::from_secs(15),
        || async { count(&client, "[data-delivery=sent]").await != json!(0) },
    )
    .await;

    let sent: Vec<Value> = receiver
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == "/outbound")
        .map(|r| serde_json::from_slice(&r.body).expect("JSON"))
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let body = sent[0].to_string();
    assert!(body.contains("Here is your invoice."), "{body}");
    let prefix = "https://bridge.example.test/media/uploads/";
    let start = body
        .find(prefix)
        .unwrap_or_else(|| panic!("an upload URL in {body}"));
    let token: String = body[start + prefix.len()..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    assert_eq!(token.len(), 64, "{body}");
    // Fetched as a platform does: no token, no cookie.
    let served = reqwest::get(app.url(&format!("/media/uploads/{token}")))
        .await
        .expect("the file is served");
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "application/pdf");
    assert_eq!(
        served.bytes().await.expect("bytes").as_ref(),
        bytes.as_slice()
    );
    client.close().await.expect("browser closes");
}
