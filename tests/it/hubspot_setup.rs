//! HubSpot mode, setup (issue #18): `hubspot register`, `connect` and `status` against the
//! spec-checking fake (tests/support/hubspot_fake.rs). Running either setup command again
//! never creates a second channel or channel account (the field failure of
//! botpress/growth #221).

use std::time::Duration;

use serde_json::{Value, json};

use channel_bridge::config::Config;
use channel_bridge::hubspot::setup::{
    self, ConnectAction, ConnectOptions, RegisterAction, RegisterOptions, SetupError, TokenState,
};

use crate::harness::{ADMIN_TOKEN, Options, TestApp, items, secret, text_event, wait_until};
use crate::support::hubspot_fake::{self, HubspotFake};

/// The `[hubspot]` section for the fake, with `channel_id` only when given.
fn hubspot_section(fake: &HubspotFake, channel_id: Option<&str>, extra: &str) -> String {
    let channel = channel_id
        .map(|id| format!("channel_id = \"{id}\"\n"))
        .unwrap_or_default();
    format!(
        "[hubspot]\napp_id = \"{}\"\nclient_secret = \"{}\"\naccess_token = \"{}\"\n\
         developer_api_key = \"{}\"\n{channel}api_base = \"{}\"\n{extra}\n",
        hubspot_fake::APP_ID,
        hubspot_fake::CLIENT_SECRET,
        hubspot_fake::ACCESS_TOKEN,
        hubspot_fake::DEVELOPER_API_KEY,
        fake.url,
    )
}

/// The test config (its generic `demo` and `off` channels) plus `extra` TOML.
fn config(extra: &str) -> Config {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = Options {
        extra: extra.to_owned(),
        ..Options::default()
    };
    let text = TestApp::config_text(
        &options,
        &dir.path().join("bridge.db"),
        "http://127.0.0.1:9",
    );
    channel_bridge::config::load_str(&text, []).expect("the test config is valid")
}

/// A LINE channel `ln`, linked to `account` when given.
fn line_channel(account: Option<&str>) -> String {
    let link = account
        .map(|a| format!("hubspot = {{ channel_account_id = \"{a}\" }}\n"))
        .unwrap_or_default();
    format!(
        "[channels.ln]\nkind = \"line\"\nchannel_access_token = \"line-token\"\n\
         channel_secret = \"line-secret\"\napi_base = \"http://127.0.0.1:9\"\n\
         api_data_base = \"http://127.0.0.1:9\"\n{link}\n"
    )
}

fn requests_to(fake: &HubspotFake, method: &str, path: &str) -> Vec<Value> {
    fake.requests()
        .into_iter()
        .filter(|r| r.method == method && r.path == path)
        .map(|r| r.body)
        .collect()
}

#[tokio::test]
async fn registering_twice_creates_one_channel_and_prints_the_config_line() {
    let fake = HubspotFake::start().await;
    fake.forget_channels();
    let config = config(&hubspot_section(&fake, None, ""));

    let first = setup::register(&config, &RegisterOptions::default())
        .await
        .expect("register");
    let second = setup::register(&config, &RegisterOptions::default())
        .await
        .expect("register again");

    assert_eq!(first.action, RegisterAction::Created);
    assert_eq!(second.action, RegisterAction::Unchanged);
    assert_eq!(second.channel_id, first.channel_id);
    let channels = fake.channels();
    assert_eq!(channels.len(), 1, "{channels:#?}");
    let channel = &channels[0];
    assert_eq!(channel["name"], "channel-bridge");
    assert_eq!(
        channel["webhookUrl"],
        "https://bridge.example.test/hubspot/webhook"
    );
    assert_eq!(
        channel["capabilities"]["threadingModel"],
        "INTEGRATION_THREAD_ID"
    );
    assert_eq!(channel["capabilities"]["allowOutgoingMessages"], true);
    assert!(
        first
            .text()
            .contains(&format!("channel_id = \"{}\"", first.channel_id)),
        "{}",
        first.text()
    );
    assert_eq!(
        requests_to(&fake, "POST", "/conversations/v3/custom-channels").len(),
        1
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn the_configured_channel_id_is_updated_in_place_with_every_field_the_patch_requires() {
    let fake = HubspotFake::start().await;
    let config = config(&hubspot_section(&fake, Some(hubspot_fake::CHANNEL_ID), ""));

    let registered = setup::register(&config, &RegisterOptions::default())
        .await
        .expect("register");

    assert_eq!(registered.action, RegisterAction::Updated);
    assert_eq!(registered.channel_id, hubspot_fake::CHANNEL_ID);
    assert!(registered.config_has_it);
    let channels = fake.channels();
    assert_eq!(channels.len(), 1, "{channels:#?}");
    assert_eq!(
        channels[0]["webhookUrl"],
        "https://bridge.example.test/hubspot/webhook"
    );
    let patches = requests_to(
        &fake,
        "PATCH",
        &format!(
            "/conversations/v3/custom-channels/{}",
            hubspot_fake::CHANNEL_ID
        ),
    );
    assert_eq!(patches.len(), 1);
    for key in ["capabilities", "channelDescription", "channelLogoUrl"] {
        assert!(
            patches[0].get(key).is_some(),
            "{key} missing: {}",
            patches[0]
        );
    }
    fake.assert_no_violations();
}

#[tokio::test]
async fn capabilities_follow_the_linked_channels_and_a_change_updates_the_one_channel() {
    let fake = HubspotFake::start().await;
    fake.forget_channels();
    // Before anything is linked: every channel that could be (generic and LINE).
    let unlinked = config(&format!(
        "{}{}",
        line_channel(None),
        hubspot_section(&fake, None, "")
    ));
    let first = setup::register(&unlinked, &RegisterOptions::default())
        .await
        .expect("register");
    assert_eq!(first.derived_from, ["demo", "ln", "off"]);
    // LINE sends no files but images, video and audio, at most four with a text.
    assert_eq!(first.capabilities.max_file_attachment_count, 4);
    assert!(
        !first
            .capabilities
            .allowed_file_attachment_mime_types
            .contains(&"application/pdf".to_owned())
    );

    // Only the generic channel linked: anything the bridge can fetch goes out.
    let linked = config(&format!(
        "[channels.hs]\nkind = \"generic\"\nsecret = \"{}\"\noutbound_url = \"http://127.0.0.1:9/o\"\n\
         hubspot = {{ channel_account_id = \"{}\" }}\n\n{}{}",
        crate::harness::secret(),
        hubspot_fake::CHANNEL_ACCOUNT_ID,
        line_channel(None),
        hubspot_section(&fake, Some(&first.channel_id), ""),
    ));
    let second = setup::register(&linked, &RegisterOptions::default())
        .await
        .expect("register again");

    assert_eq!(second.action, RegisterAction::Updated);
    assert_eq!(second.channel_id, first.channel_id);
    assert_eq!(second.derived_from, ["hs"]);
    let channels = fake.channels();
    assert_eq!(channels.len(), 1, "{channels:#?}");
    let capabilities = &channels[0]["capabilities"];
    assert_eq!(capabilities["maxFileAttachmentCount"], 10);
    assert_eq!(
        capabilities["deliveryIdentifierTypes"],
        json!([
            "CHANNEL_SPECIFIC_OPAQUE_ID",
            "HS_PHONE_NUMBER",
            "HS_EMAIL_ADDRESS"
        ])
    );
    assert!(
        capabilities["allowedFileAttachmentMimeTypes"]
            .as_array()
            .unwrap()
            .contains(&json!("application/*"))
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_channel_of_the_app_with_the_same_name_is_taken_over_not_duplicated() {
    let fake = HubspotFake::start().await;
    // The fake's channel 1001 is named "Existing channel"; the config does not know its id.
    let config = config(&hubspot_section(&fake, None, ""));
    let options = RegisterOptions {
        name: "Existing channel".into(),
        ..RegisterOptions::default()
    };

    let registered = setup::register(&config, &options).await.expect("register");

    assert_eq!(registered.action, RegisterAction::Updated);
    assert_eq!(registered.channel_id, hubspot_fake::CHANNEL_ID);
    assert!(!registered.config_has_it);
    assert_eq!(fake.channels().len(), 1);
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_configured_channel_id_hubspot_does_not_know_is_refused_not_replaced() {
    let fake = HubspotFake::start().await;
    let config = config(&hubspot_section(&fake, Some("9999"), ""));

    let error = setup::register(&config, &RegisterOptions::default())
        .await
        .expect_err("an unknown channel id is an error");

    assert!(matches!(error, SetupError::Conflict(_)), "{error}");
    assert!(error.to_string().contains("9999"), "{error}");
    assert!(requests_to(&fake, "POST", "/conversations/v3/custom-channels").is_empty());
    assert_eq!(fake.channels().len(), 1);
}

#[tokio::test]
async fn two_channels_of_the_app_with_the_name_are_refused_naming_both() {
    let fake = HubspotFake::start().await;
    fake.forget_channels();
    let config = config(&hubspot_section(&fake, None, ""));
    let first = setup::register(&config, &RegisterOptions::default())
        .await
        .expect("register");
    // Someone else registered a second one by hand.
    let other = RegisterOptions {
        name: "other".into(),
        ..RegisterOptions::default()
    };
    let second = setup::register(&config, &other)
        .await
        .expect("register other");
    let renamed = config_with_channel(&fake, &second.channel_id);
    setup::register(&renamed, &RegisterOptions::default())
        .await
        .expect("rename the second");

    let error = setup::register(&config, &RegisterOptions::default())
        .await
        .expect_err("two channels named alike");

    let text = error.to_string();
    assert!(
        text.contains(&first.channel_id) && text.contains(&second.channel_id),
        "{text}"
    );
    assert!(text.contains("hubspot.channel_id"), "{text}");
    assert_eq!(fake.channels().len(), 2);
}

fn config_with_channel(fake: &HubspotFake, id: &str) -> Config {
    config(&hubspot_section(fake, Some(id), ""))
}

#[tokio::test]
async fn register_without_a_developer_key_fails_before_calling_hubspot() {
    let fake = HubspotFake::start().await;
    let section = hubspot_section(&fake, None, "").replace(
        &format!(
            "developer_api_key = \"{}\"\n",
            hubspot_fake::DEVELOPER_API_KEY
        ),
        "",
    );
    let config = config(&section);

    let error = setup::register(&config, &RegisterOptions::default())
        .await
        .expect_err("no developer key");

    assert!(
        error.to_string().contains("hubspot.developer_api_key"),
        "{error}"
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_refused_developer_key_is_a_clear_error_without_the_key() {
    let fake = HubspotFake::start().await;
    let section = hubspot_section(&fake, None, "")
        .replace(hubspot_fake::DEVELOPER_API_KEY, "wrong-developer-key");
    let config = config(&section);

    let error = setup::register(&config, &RegisterOptions::default())
        .await
        .expect_err("a wrong key");

    let text = error.to_string();
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(text.contains("hubspot.developer_api_key"), "{text}");
    assert!(!text.contains("wrong-developer-key"), "{text}");
}

#[tokio::test]
async fn register_needs_the_public_url_hubspot_posts_replies_to() {
    let fake = HubspotFake::start().await;
    let mut config = config(&hubspot_section(&fake, None, ""));
    config.server.public_url = None;

    let error = setup::register(&config, &RegisterOptions::default())
        .await
        .expect_err("no public url");

    assert!(error.to_string().contains("server.public_url"), "{error}");
    assert!(fake.requests().is_empty());
}

// ---- connect ----

fn connect_options(channel: &str, inbox: &str, name: &str) -> ConnectOptions {
    ConnectOptions {
        channel: channel.into(),
        inbox_id: inbox.into(),
        name: name.into(),
    }
}

/// A generic channel `hs`, linked to `account` when given.
fn generic_channel(id: &str, account: Option<&str>, extra: &str) -> String {
    let link = account
        .map(|a| format!("hubspot = {{ channel_account_id = \"{a}\" }}\n"))
        .unwrap_or_default();
    format!(
        "[channels.{id}]\nkind = \"generic\"\nsecret = \"{}\"\noutbound_url = \"http://127.0.0.1:9/o\"\n{extra}{link}\n",
        secret()
    )
}

#[tokio::test]
async fn connecting_twice_creates_one_account_and_prints_the_channels_link_line() {
    let fake = HubspotFake::start().await;
    let config = config(&hubspot_section(&fake, Some(hubspot_fake::CHANNEL_ID), ""));
    let options = connect_options("demo", "3003", "Support app");

    let first = setup::connect(&config, &options).await.expect("connect");
    // The line was not pasted yet: the account is found by its name and inbox.
    let second = setup::connect(&config, &options)
        .await
        .expect("connect again");

    assert_eq!(first.action, ConnectAction::Created);
    assert_eq!(second.action, ConnectAction::Found);
    assert_eq!(second.channel_account_id, first.channel_account_id);
    let line = format!(
        "hubspot = {{ channel_account_id = \"{}\" }}",
        first.channel_account_id
    );
    assert_eq!(first.config_line, line);
    assert!(first.text().contains(&line), "{}", first.text());
    assert!(first.text().contains("[channels.demo]"), "{}", first.text());
    let path = format!(
        "/conversations/v3/custom-channels/{}/channel-accounts",
        hubspot_fake::CHANNEL_ID
    );
    let created = requests_to(&fake, "POST", &path);
    assert_eq!(created.len(), 1, "{created:#?}");
    assert_eq!(
        created[0],
        json!({
            "inboxId": "3003", "name": "Support app", "authorized": true,
            "deliveryIdentifier": {"type": "CHANNEL_SPECIFIC_OPAQUE_ID", "value": "demo"}
        })
    );
    let accounts = fake.accounts();
    assert_eq!(accounts.len(), 2, "the fake's own and ours: {accounts:#?}");
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_linked_channel_is_reported_already_linked_and_nothing_is_created() {
    let fake = HubspotFake::start().await;
    let config = config(&format!(
        "{}{}",
        generic_channel("hs", Some(hubspot_fake::CHANNEL_ACCOUNT_ID), ""),
        fake.config_section("")
    ));

    let connected = setup::connect(&config, &connect_options("hs", "3003", "Another name"))
        .await
        .expect("connect");

    assert_eq!(connected.action, ConnectAction::AlreadyLinked);
    assert_eq!(
        connected.channel_account_id,
        hubspot_fake::CHANNEL_ACCOUNT_ID
    );
    assert!(connected.config_has_it);
    assert_eq!(connected.authorized, Some(true));
    let text = connected.text();
    assert!(text.contains("already linked"), "{text}");
    assert!(!text.contains("Put this line"), "{text}");
    assert!(fake.requests().iter().all(|r| r.method == "GET"));
    assert_eq!(fake.accounts().len(), 1);
}

#[tokio::test]
async fn a_link_to_an_account_hubspot_does_not_have_is_refused_not_replaced() {
    let fake = HubspotFake::start().await;
    let config = config(&format!(
        "{}{}",
        generic_channel("hs", Some("9999"), ""),
        fake.config_section("")
    ));

    let error = setup::connect(&config, &connect_options("hs", "3003", "Support app"))
        .await
        .expect_err("a dangling link");

    assert!(matches!(error, SetupError::Conflict(_)), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("9999") && text.contains("[channels.hs]"),
        "{text}"
    );
    assert!(fake.requests().iter().all(|r| r.method == "GET"));
    assert_eq!(fake.accounts().len(), 1);
}

#[tokio::test]
async fn connect_errors_say_what_to_fix_before_calling_hubspot() {
    let fake = HubspotFake::start().await;
    let with_channel = config(&hubspot_section(&fake, Some(hubspot_fake::CHANNEL_ID), ""));
    let without_channel_id = config(&hubspot_section(&fake, None, ""));
    let without_section = config("");
    let cases = [
        (
            &with_channel,
            connect_options("nope", "3003", "x"),
            "no channel \"nope\" in the config (channels: demo, off)",
        ),
        (
            &with_channel,
            connect_options("demo", "inbox-1", "x"),
            "--inbox \"inbox-1\" is not a HubSpot inbox id",
        ),
        (
            &with_channel,
            connect_options("demo", "3003", " "),
            "--name must not be empty",
        ),
        (
            &without_channel_id,
            connect_options("demo", "3003", "x"),
            "run `channel-bridge hubspot register`",
        ),
        (
            &without_section,
            connect_options("demo", "3003", "x"),
            "no [hubspot] section",
        ),
    ];
    for (config, options, expected) in cases {
        let error = setup::connect(config, &options).await.expect_err(expected);
        assert!(matches!(error, SetupError::Config(_)), "{error}");
        assert!(error.to_string().contains(expected), "{error}");
    }
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
}

#[tokio::test]
async fn a_refusal_from_hubspot_is_an_error_with_its_message_and_no_secret() {
    let fake = HubspotFake::start().await;
    let config = config(&hubspot_section(&fake, Some(hubspot_fake::CHANNEL_ID), ""));
    fake.fail_next(
        "channel-accounts",
        400,
        &[],
        json!({"status": "error", "category": "VALIDATION_ERROR",
               "correlationId": "00000000-0000-4000-8000-000000000000",
               "message": "Inbox 77 does not exist"}),
        1,
    );
    // The GET that lists accounts is refused first.
    let error = setup::connect(&config, &connect_options("demo", "77", "Support app"))
        .await
        .expect_err("refused");
    let text = error.to_string();
    assert!(
        text.contains("HTTP 400") && text.contains("Inbox 77 does not exist"),
        "{text}"
    );

    fake.expire_tokens();
    let error = setup::connect(&config, &connect_options("demo", "3003", "Support app"))
        .await
        .expect_err("an expired token");
    let text = error.to_string();
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(text.contains("hubspot.access_token"), "{text}");
    assert!(!text.contains(hubspot_fake::ACCESS_TOKEN), "{text}");
    assert_eq!(fake.accounts().len(), 1);
}

#[tokio::test]
async fn connect_with_oauth_refreshes_the_token_first() {
    let fake = HubspotFake::start().await;
    let config = config(&fake.oauth_config_section(""));

    let connected = setup::connect(&config, &connect_options("demo", "3003", "Support app"))
        .await
        .expect("connect");

    assert_eq!(connected.action, ConnectAction::Created);
    assert_eq!(fake.tokens_issued(), 1);
    fake.assert_no_violations();
}

// ---- status ----

/// An app with channel `hs` linked to the fake's account, plus `extra` TOML.
async fn linked_app(section: &str, extra: &str) -> TestApp {
    TestApp::spawn_with(Options {
        extra: format!(
            "{}{section}\n{extra}",
            generic_channel("hs", Some(hubspot_fake::CHANNEL_ACCOUNT_ID), "")
        ),
        // A failed publish waits long enough to be seen pending.
        retry_schedule_ms: vec![0, 60_000],
        ..Options::default()
    })
    .await
}

fn app_config(app: &TestApp) -> Config {
    channel_bridge::config::load_file(&app.config_path).expect("the app's config")
}

async fn deliveries(app: &TestApp, state: &str) -> Vec<Value> {
    items(app.get(&format!("/api/v1/deliveries?state={state}")).await)
}

#[tokio::test]
async fn status_shows_each_channel_its_account_and_its_queue_and_is_ok_when_all_is_well() {
    let fake = HubspotFake::start().await;
    let app = linked_app(&fake.config_section(""), "").await;
    assert_eq!(
        app.post_webhook("hs", &text_event("m-1", "u-1", "hi"))
            .await
            .status(),
        200
    );
    wait_until(
        "the message is published",
        Duration::from_secs(20),
        || async { fake.messages().len() == 1 },
    )
    .await;
    app.drain_outbox().await;

    let status = setup::status(&app_config(&app)).await.expect("status");

    assert!(status.ok(), "{status:#?}");
    assert_eq!(status.token, TokenState::Valid);
    assert_eq!(status.auth, "static");
    let json = serde_json::to_value(&status).unwrap();
    let hs = json["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "hs")
        .cloned()
        .expect("hs is listed");
    assert_eq!(hs["channel_account_id"], hubspot_fake::CHANNEL_ACCOUNT_ID);
    assert_eq!(hs["account"]["found"], true);
    assert_eq!(hs["account"]["authorized"], true);
    assert_eq!(hs["account"]["inbox_id"], hubspot_fake::INBOX_ID);
    assert_eq!(hs["queue"], json!({"pending": 0, "dead": 0}));
    let demo = json["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "demo")
        .cloned()
        .expect("demo is listed");
    assert_eq!(demo["channel_account_id"], Value::Null);
    let text = status.text();
    assert!(text.contains("hs (generic): account 2002 \"Existing account\", inbox 3003, authorized; 0 waiting, 0 dead"), "{text}");
    assert!(text.contains("demo (generic): not linked"), "{text}");
    assert!(text.contains("All good."), "{text}");
    fake.assert_no_violations();
}

#[tokio::test]
async fn status_counts_waiting_and_dead_publishes_per_channel_and_needs_attention_for_dead_ones() {
    let fake = HubspotFake::start().await;
    let app = linked_app(&fake.config_section(""), "").await;
    let refusal = json!({"status": "error", "category": "VALIDATION_ERROR",
        "correlationId": "00000000-0000-4000-8000-000000000000", "message": "bad message"});
    // A 400 dead-letters the first contact's publish at once.
    fake.fail_next("/messages", 400, &[], refusal, 1);
    app.post_webhook("hs", &text_event("m-1", "u-1", "first"))
        .await;
    wait_until("a publish is dead", Duration::from_secs(20), || async {
        deliveries(&app, "dead").await.len() == 1
    })
    .await;
    // A 503 leaves the second contact's waiting for its retry in a minute.
    fake.fail_next("/messages", 503, &[], json!({"message": "down"}), 100);
    app.post_webhook("hs", &text_event("m-2", "u-2", "second"))
        .await;
    wait_until("a publish failed once", Duration::from_secs(20), || async {
        deliveries(&app, "pending")
            .await
            .iter()
            .any(|d| d["attempts"].as_u64() >= Some(1))
    })
    .await;

    let status = setup::status(&app_config(&app)).await.expect("status");

    assert!(!status.ok());
    let hs = status.channels.iter().find(|c| c.channel == "hs").unwrap();
    let queue = hs.queue.expect("the queue is read");
    assert_eq!((queue.pending, queue.dead), (1, 1));
    assert_eq!(
        status.needs_attention.len(),
        1,
        "{:?}",
        status.needs_attention
    );
    assert!(
        status.needs_attention[0].starts_with("channel hs: 1 message(s) could not be published"),
        "{:?}",
        status.needs_attention
    );
    assert!(
        status.text().contains("1 waiting, 1 dead"),
        "{}",
        status.text()
    );
}

#[tokio::test]
async fn status_with_an_expired_static_token_says_so_without_the_token() {
    let fake = HubspotFake::start().await;
    let app = linked_app(&fake.config_section(""), "").await;
    fake.expire_tokens();

    let status = setup::status(&app_config(&app)).await.expect("status");

    assert!(!status.ok());
    let TokenState::Invalid { reason } = &status.token else {
        panic!("{:?}", status.token);
    };
    assert!(
        reason.contains("HTTP 401") && reason.contains("hubspot.access_token"),
        "{reason}"
    );
    assert!(!status.text().contains(hubspot_fake::ACCESS_TOKEN));
    assert!(
        status
            .text()
            .contains("Token: static access token, INVALID"),
        "{}",
        status.text()
    );
    // The queue is still read.
    let hs = status.channels.iter().find(|c| c.channel == "hs").unwrap();
    assert!(hs.queue.is_some());
    assert!(hs.account.is_none());
}

#[tokio::test]
async fn status_with_oauth_checks_that_the_refresh_works() {
    let fake = HubspotFake::start().await;
    let app = linked_app(&fake.oauth_config_section(""), "").await;

    let status = setup::status(&app_config(&app)).await.expect("status");
    assert_eq!(status.auth, "oauth");
    assert_eq!(status.token, TokenState::Valid, "{status:#?}");
    assert!(fake.tokens_issued() >= 1);

    let mut refused = app_config(&app);
    let section = fake
        .oauth_config_section("")
        .replace(hubspot_fake::REFRESH_TOKEN, "revoked-refresh-token");
    refused.hubspot = config(&section).hubspot;
    let status = setup::status(&refused).await.expect("status");
    let TokenState::Invalid { reason } = &status.token else {
        panic!("{:?}", status.token);
    };
    assert!(reason.contains("refresh token was refused"), "{reason}");
    assert!(!reason.contains("revoked-refresh-token"), "{reason}");
    assert!(!status.ok());
}

#[tokio::test]
async fn status_flags_an_account_that_is_missing_or_not_authorized() {
    let fake = HubspotFake::start().await;
    // An account the portal de-authorized.
    let created: Value = reqwest::Client::new()
        .post(format!(
            "{}/conversations/v3/custom-channels/{}/channel-accounts",
            fake.url,
            hubspot_fake::CHANNEL_ID
        ))
        .bearer_auth(hubspot_fake::ACCESS_TOKEN)
        .json(&json!({"inboxId": "3003", "name": "Paused", "authorized": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paused = created["id"].as_str().unwrap().to_owned();
    let app = linked_app(
        &fake.config_section(""),
        &format!(
            "{}{}",
            generic_channel("gone", Some("9999"), ""),
            generic_channel("paused", Some(&paused), "")
        ),
    )
    .await;

    let status = setup::status(&app_config(&app)).await.expect("status");

    let attention = status.needs_attention.join("\n");
    assert!(
        attention.contains("channel gone: channel account 9999 is not on custom channel 1001"),
        "{attention}"
    );
    assert!(
        attention.contains(&format!(
            "channel paused: channel account {paused} is not authorized"
        )),
        "{attention}"
    );
    assert_eq!(status.needs_attention.len(), 2, "{attention}");
    let text = status.text();
    assert!(text.contains("account 9999: NOT FOUND"), "{text}");
    assert!(text.contains("NOT AUTHORIZED"), "{text}");
}

#[tokio::test]
async fn status_without_a_channel_id_or_a_database_says_what_to_do() {
    let fake = HubspotFake::start().await;
    // `config()` drops its folder: the SQLite file does not exist.
    let config = config(&hubspot_section(&fake, None, ""));

    let status = setup::status(&config).await.expect("status");

    assert!(matches!(status.token, TokenState::NotChecked { .. }));
    let attention = status.needs_attention.join("\n");
    assert!(
        attention.contains("hubspot.channel_id is not set"),
        "{attention}"
    );
    assert!(attention.contains("cannot read the outbox"), "{attention}");
    assert!(fake.requests().is_empty());
    let error = setup::status(&config_without_hubspot())
        .await
        .expect_err("no [hubspot]");
    assert!(
        error.to_string().contains("no [hubspot] section"),
        "{error}"
    );
}

#[tokio::test]
async fn status_says_when_hubspot_does_not_know_the_configured_channel() {
    let fake = HubspotFake::start().await;
    let app = linked_app(&fake.config_section(""), "").await;
    fake.fail_next(
        "channel-accounts",
        404,
        &[],
        json!({"status": "error", "category": "OBJECT_NOT_FOUND",
               "correlationId": "00000000-0000-4000-8000-000000000000",
               "message": "Channel 1001 not found"}),
        1,
    );

    let status = setup::status(&app_config(&app)).await.expect("status");

    assert_eq!(status.token, TokenState::Valid);
    assert_eq!(
        status.needs_attention.len(),
        1,
        "{:?}",
        status.needs_attention
    );
    assert!(
        status.needs_attention[0].contains(
            "hubspot.channel_id 1001: HubSpot has no such custom channel (Channel 1001 not found)"
        ),
        "{:?}",
        status.needs_attention
    );
}

fn config_without_hubspot() -> Config {
    config("")
}

// ---- routing ----

/// HubSpot routes a linked channel's conversations: ours stay unassigned (`nobody`) unless
/// the channel's own `routing` says otherwise.
#[tokio::test]
async fn a_linked_channel_routes_to_nobody_unless_its_config_names_a_routing() {
    let fake = HubspotFake::start().await;
    let reps = "[[reps]]\nid = \"alice\"\nemail = \"alice@example.com\"\ncapacity = 10\n";
    let routed = generic_channel(
        "routed",
        Some(hubspot_fake::CHANNEL_ACCOUNT_ID),
        "routing = { mode = \"users_and_teams\", users = [\"alice\"] }\n",
    );
    let app = linked_app(&fake.config_section(""), &format!("{reps}{routed}")).await;
    let (status, _) = app
        .api(
            reqwest::Method::PUT,
            "/api/v1/reps/alice/presence",
            Some(json!({"status": "online"})),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 200);

    for channel in ["hs", "routed"] {
        let response = app
            .post_webhook(channel, &text_event(&format!("{channel}-1"), "u-1", "hi"))
            .await;
        assert_eq!(response.status(), 200);
    }

    let owner = |channel: &'static str| {
        let app = &app;
        async move {
            let page = app
                .get(&format!("/api/v1/conversations?channel={channel}"))
                .await;
            items(page)[0]["owner_id"].clone()
        }
    };
    assert_eq!(
        owner("hs").await,
        Value::Null,
        "HubSpot routes: nobody here"
    );
    assert_eq!(owner("routed").await, "alice", "the explicit routing wins");
}
