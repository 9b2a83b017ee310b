//! HubSpot mode, setup (issue #18): `hubspot register`, `connect` and `status` against the
//! spec-checking fake (tests/support/hubspot_fake.rs). Running either setup command again
//! never creates a second channel or channel account (the field failure of
//! botpress/growth #221).

use serde_json::{Value, json};

use channel_bridge::config::Config;
use channel_bridge::hubspot::setup::{self, RegisterAction, RegisterOptions, SetupError};

use crate::harness::{Options, TestApp};
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
