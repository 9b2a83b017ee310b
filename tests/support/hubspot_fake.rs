//! A HubSpot fake on 127.0.0.1 for the HubSpot-mode tests: it implements the endpoints
//! the bridge calls (custom channels, channel accounts, publish message, PATCH status,
//! Files upload, OAuth token) and CHECKS every request against HubSpot's published specs
//! (`customChannels.json` v3, `files.json` v3): required fields present, enums valid,
//! types right, credentials the right kind. Anything invalid is answered 400 the way
//! HubSpot would and recorded as a violation, which tests assert empty
//! ([`HubspotFake::assert_no_violations`]). It records every request, answers failures on
//! demand ([`HubspotFake::fail_next`]), expires tokens ([`HubspotFake::expire_tokens`]),
//! and can enforce a rate limit and report any request over it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// The credentials every fake accepts (tests put them in the bridge's `[hubspot]`).
pub const APP_ID: &str = "4242";
pub const CLIENT_ID: &str = "hs-client-id";
pub const CLIENT_SECRET: &str = "hs-client-secret";
pub const ACCESS_TOKEN: &str = "hs-static-token";
pub const REFRESH_TOKEN: &str = "hs-refresh-token";
pub const DEVELOPER_API_KEY: &str = "hs-developer-key";
/// A channel and a channel account that exist from the start (for publish tests).
pub const CHANNEL_ID: &str = "1001";
pub const CHANNEL_ACCOUNT_ID: &str = "2002";
pub const INBOX_ID: &str = "3003";

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// The JSON body (Null when none or not JSON).
    pub body: Value,
    pub raw: Bytes,
    pub at: Instant,
}

/// A file uploaded through the Files API.
#[derive(Clone, Debug)]
pub struct Upload {
    pub id: String,
    pub file_name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub options: Value,
    pub folder_path: Option<String>,
}

struct Failure {
    path_contains: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
    times: usize,
}

struct FakeState {
    requests: Vec<Recorded>,
    violations: Vec<String>,
    failures: Vec<Failure>,
    channels: Vec<Value>,
    accounts: Vec<Value>,
    /// Published messages: the request body plus `id` and `conversationsThreadId`.
    messages: Vec<Value>,
    status_updates: Vec<(String, Value)>,
    threads: HashMap<String, String>,
    uploads: Vec<Upload>,
    tokens: Vec<String>,
    tokens_issued: u32,
    token_lifetime_s: u64,
    next_id: u64,
    /// HubSpot's limit, enforced: (max requests, window).
    limit: Option<(usize, Duration)>,
    sent: VecDeque<Instant>,
    /// How long each publish takes at "HubSpot" ([`HubspotFake::delay_publishes`]).
    publish_delay: Duration,
    /// Threads (`integrationThreadId`) with a publish being answered right now.
    publishing: Vec<String>,
    /// Publishes that repeated an `integrationIdempotencyId` already published.
    repeated_publishes: Vec<String>,
}

pub struct HubspotFake {
    pub url: String,
    state: Arc<Mutex<FakeState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HubspotFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HubspotFake {
    /// Starts a fake with the channel and channel account of the constants above.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(FakeState {
            requests: Vec::new(),
            violations: Vec::new(),
            failures: Vec::new(),
            channels: vec![json!({
                "id": CHANNEL_ID, "name": "Existing channel", "createdAt": "2026-01-01T00:00:00Z",
                "capabilities": {}, "webhookUrl": "https://old.example/hubspot/webhook"
            })],
            accounts: vec![account_json(
                CHANNEL_ACCOUNT_ID,
                CHANNEL_ID,
                INBOX_ID,
                "Existing account",
                true,
                None,
            )],
            messages: Vec::new(),
            status_updates: Vec::new(),
            threads: HashMap::new(),
            uploads: Vec::new(),
            tokens: vec![ACCESS_TOKEN.to_owned()],
            tokens_issued: 0,
            token_lifetime_s: 1800,
            next_id: 5000,
            limit: None,
            sent: VecDeque::new(),
            publish_delay: Duration::ZERO,
            publishing: Vec::new(),
            repeated_publishes: Vec::new(),
        }));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the HubSpot fake");
        let url = format!("http://{}", listener.local_addr().expect("fake address"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, state, task }
    }

    fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The `[hubspot]` section for a bridge talking to this fake with the static token.
    pub fn config_section(&self, extra: &str) -> String {
        format!(
            "[hubspot]\napp_id = \"{APP_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\naccess_token = \"{ACCESS_TOKEN}\"\n\
             developer_api_key = \"{DEVELOPER_API_KEY}\"\nchannel_id = \"{CHANNEL_ID}\"\napi_base = \"{}\"\n{extra}\n",
            self.url
        )
    }

    /// The `[hubspot]` section using OAuth (refresh token) instead of a static token.
    pub fn oauth_config_section(&self, extra: &str) -> String {
        format!(
            "[hubspot]\napp_id = \"{APP_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nclient_id = \"{CLIENT_ID}\"\n\
             refresh_token = \"{REFRESH_TOKEN}\"\ndeveloper_api_key = \"{DEVELOPER_API_KEY}\"\nchannel_id = \"{CHANNEL_ID}\"\n\
             api_base = \"{}\"\n{extra}\n",
            self.url
        )
    }

    /// The next `times` requests whose path contains `path_contains` are answered
    /// `status` with these headers and body instead.
    pub fn fail_next(
        &self,
        path_contains: &str,
        status: u16,
        headers: &[(&str, &str)],
        body: Value,
        times: usize,
    ) {
        self.with(|s| {
            s.failures.push(Failure {
                path_contains: path_contains.to_owned(),
                status,
                headers: headers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                body,
                times,
            })
        });
    }

    /// Every bearer token issued so far stops working (401), as an expired one does.
    pub fn expire_tokens(&self) {
        self.with(|s| s.tokens.clear());
    }

    /// Enforces HubSpot's limit: a bearer request over `max` in any `window` is answered
    /// 429 and recorded as a violation.
    pub fn enforce_limit(&self, max: usize, window: Duration) {
        self.with(|s| s.limit = Some((max, window)));
    }

    /// Each publish is answered only after `delay`, and a second publish of the same
    /// thread (`integrationThreadId`) arriving meanwhile is a violation: the bridge keeps
    /// one publish in flight per conversation.
    pub fn delay_publishes(&self, delay: Duration) {
        self.with(|s| s.publish_delay = delay);
    }

    /// The `integrationIdempotencyId`s published again after HubSpot already had them
    /// (answered with the message HubSpot has, not stored twice; the spec documents the
    /// field for safe retries). A repeat is only expected when a crash came between
    /// HubSpot's answer and the bridge recording it.
    pub fn repeated_publishes(&self) -> Vec<String> {
        self.with(|s| s.repeated_publishes.clone())
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.with(|s| s.requests.clone())
    }

    pub fn violations(&self) -> Vec<String> {
        self.with(|s| s.violations.clone())
    }

    /// Fails the test if any request broke the spec.
    pub fn assert_no_violations(&self) {
        let v = self.violations();
        assert!(v.is_empty(), "requests HubSpot would refuse: {v:#?}");
    }

    /// Published messages, oldest first (request bodies plus the ids the fake gave).
    pub fn messages(&self) -> Vec<Value> {
        self.with(|s| s.messages.clone())
    }

    /// PATCHed statuses as (HubSpot message id, body).
    pub fn status_updates(&self) -> Vec<(String, Value)> {
        self.with(|s| s.status_updates.clone())
    }

    pub fn uploads(&self) -> Vec<Upload> {
        self.with(|s| s.uploads.clone())
    }

    pub fn channels(&self) -> Vec<Value> {
        self.with(|s| s.channels.clone())
    }

    pub fn accounts(&self) -> Vec<Value> {
        self.with(|s| s.accounts.clone())
    }

    /// How many OAuth access tokens were issued.
    pub fn tokens_issued(&self) -> u32 {
        self.with(|s| s.tokens_issued)
    }

    /// Removes the pre-made channel, so `register` starts from nothing.
    pub fn forget_channels(&self) {
        self.with(|s| s.channels.clear());
    }

    /// Adds an outgoing message (as a rep's reply in HubSpot) the bridge may report on.
    pub fn add_message(&self, message: Value) {
        self.with(|s| s.messages.push(message));
    }
}

fn account_json(
    id: &str,
    channel: &str,
    inbox: &str,
    name: &str,
    authorized: bool,
    identifier: Option<Value>,
) -> Value {
    let mut account = json!({
        "id": id, "channelId": channel, "inboxId": inbox, "name": name, "active": true,
        "authorized": authorized, "archived": false, "createdAt": "2026-01-01T00:00:00Z"
    });
    if let Some(identifier) = identifier {
        account["deliveryIdentifier"] = identifier;
    }
    account
}

fn error(status: StatusCode, category: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "status": "error", "message": message, "category": category,
            "correlationId": "00000000-0000-4000-8000-000000000000"
        })),
    )
        .into_response()
}

/// Checks a request against the spec; collects what is wrong.
struct Check<'a> {
    problems: Vec<String>,
    what: &'a str,
}

impl<'a> Check<'a> {
    fn new(what: &'a str) -> Self {
        Self {
            problems: Vec::new(),
            what,
        }
    }

    fn fail(&mut self, message: String) {
        self.problems.push(format!("{}: {message}", self.what));
    }

    fn object<'v>(&mut self, v: &'v Value, at: &str) -> Option<&'v Map<String, Value>> {
        match v.as_object() {
            Some(o) => Some(o),
            None => {
                self.fail(format!("{at} must be an object, got {v}"));
                None
            }
        }
    }

    fn only(&mut self, o: &Map<String, Value>, at: &str, allowed: &[&str]) {
        for key in o.keys() {
            if !allowed.contains(&key.as_str()) {
                self.fail(format!("{at}.{key} is not in the schema"));
            }
        }
    }

    fn string(&mut self, o: &Map<String, Value>, at: &str, key: &str, required: bool) {
        match o.get(key) {
            None if required => self.fail(format!("{at}.{key} is required")),
            None => {}
            Some(Value::String(_)) => {}
            Some(other) => self.fail(format!("{at}.{key} must be a string, got {other}")),
        }
    }

    fn boolean(&mut self, o: &Map<String, Value>, at: &str, key: &str, required: bool) {
        match o.get(key) {
            None if required => self.fail(format!("{at}.{key} is required")),
            None | Some(Value::Bool(_)) => {}
            Some(other) => self.fail(format!("{at}.{key} must be a boolean, got {other}")),
        }
    }

    fn number(&mut self, o: &Map<String, Value>, at: &str, key: &str, required: bool) {
        match o.get(key) {
            None if required => self.fail(format!("{at}.{key} is required")),
            None | Some(Value::Number(_)) => {}
            Some(other) => self.fail(format!("{at}.{key} must be a number, got {other}")),
        }
    }

    fn one_of(
        &mut self,
        o: &Map<String, Value>,
        at: &str,
        key: &str,
        values: &[&str],
        required: bool,
    ) {
        match o.get(key) {
            None if required => self.fail(format!("{at}.{key} is required")),
            None => {}
            Some(Value::String(s)) if values.contains(&s.as_str()) => {}
            Some(other) => self.fail(format!("{at}.{key} must be one of {values:?}, got {other}")),
        }
    }

    fn array<'v>(
        &mut self,
        o: &'v Map<String, Value>,
        at: &str,
        key: &str,
        required: bool,
    ) -> &'v [Value] {
        match o.get(key) {
            None => {
                if required {
                    self.fail(format!("{at}.{key} is required"));
                }
                &[]
            }
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.fail(format!("{at}.{key} must be an array, got {other}"));
                &[]
            }
        }
    }

    fn date_time(&mut self, o: &Map<String, Value>, at: &str, key: &str) {
        if let Some(Value::String(s)) = o.get(key)
            && chrono::DateTime::parse_from_rfc3339(s).is_err()
        {
            self.fail(format!(
                "{at}.{key} must be an RFC 3339 date-time, got {s:?}"
            ));
        }
    }
}

const IDENTIFIER_TYPES: &[&str] = &[
    "HS_EMAIL_ADDRESS",
    "HS_PHONE_NUMBER",
    "HS_SHORT_CODE",
    "CHANNEL_SPECIFIC_OPAQUE_ID",
];

fn check_identifier(check: &mut Check, v: &Value, at: &str) {
    if let Some(o) = check.object(v, at) {
        check.only(o, at, &["type", "value"]);
        check.one_of(o, at, "type", IDENTIFIER_TYPES, true);
        check.string(o, at, "value", true);
        if let (Some(Value::String(kind)), Some(Value::String(value))) =
            (o.get("type"), o.get("value"))
        {
            if kind == "HS_PHONE_NUMBER"
                && !(value.starts_with('+') && value[1..].bytes().all(|b| b.is_ascii_digit()))
            {
                check.fail(format!("{at}.value {value:?} is not an E.164 phone number"));
            }
            if kind == "HS_EMAIL_ADDRESS" && !value.contains('@') {
                check.fail(format!("{at}.value {value:?} is not an e-mail address"));
            }
        }
    }
}

fn check_participants(check: &mut Check, o: &Map<String, Value>, key: &str) {
    let items = check.array(o, "body", key, true).to_vec();
    for (i, p) in items.iter().enumerate() {
        let at = format!("body.{key}[{i}]");
        if let Some(p) = check.object(p, &at) {
            check.only(p, &at, &["deliveryIdentifier", "name", "senderActorId"]);
            check.string(p, &at, "name", false);
            check.string(p, &at, "senderActorId", false);
            match p.get("deliveryIdentifier") {
                Some(d) => check_identifier(check, d, &format!("{at}.deliveryIdentifier")),
                None => check.fail(format!("{at}.deliveryIdentifier is required")),
            }
        }
    }
}

fn check_attachment(check: &mut Check, v: &Value, at: &str, files: &[Upload]) {
    let Some(o) = check.object(v, at) else { return };
    check.one_of(
        o,
        at,
        "type",
        &[
            "FILE",
            "LOCATION",
            "CONTACT",
            "UNSUPPORTED_CONTENT",
            "QUICK_REPLIES",
            "MESSAGE_HEADER",
            "SOCIAL_MEDIA_METADATA",
        ],
        true,
    );
    match o.get("type").and_then(Value::as_str) {
        Some("FILE") => {
            check.only(o, at, &["type", "fileId", "fileUsageType"]);
            check.string(o, at, "fileId", true);
            check.one_of(
                o,
                at,
                "fileUsageType",
                &["AUDIO", "IMAGE", "OTHER", "STICKER", "VOICE_RECORDING"],
                false,
            );
            if let Some(Value::String(id)) = o.get("fileId")
                && !files.iter().any(|f| &f.id == id)
            {
                check.fail(format!(
                    "{at}.fileId {id} is not a file in the File Manager"
                ));
            }
        }
        Some("LOCATION") => {
            check.only(
                o,
                at,
                &["type", "latitude", "longitude", "address", "name", "url"],
            );
            check.number(o, at, "latitude", true);
            check.number(o, at, "longitude", true);
            check.string(o, at, "address", false);
            check.string(o, at, "name", false);
            check.string(o, at, "url", false);
        }
        Some("CONTACT") => {
            check.only(o, at, &["type", "contactProfile"]);
            let Some(profile) = o.get("contactProfile") else {
                check.fail(format!("{at}.contactProfile is required"));
                return;
            };
            let at = format!("{at}.contactProfile");
            let Some(p) = check.object(profile, &at) else {
                return;
            };
            check.only(
                p,
                &at,
                &["addresses", "emails", "phones", "urls", "name", "org"],
            );
            for (key, field) in [("emails", "email"), ("phones", "phone"), ("urls", "url")] {
                let items = check.array(p, &at, key, true).to_vec();
                for (i, item) in items.iter().enumerate() {
                    let at = format!("{at}.{key}[{i}]");
                    if let Some(item) = check.object(item, &at) {
                        check.string(item, &at, field, true);
                        if key == "phones" {
                            check.one_of(
                                item,
                                &at,
                                "type",
                                &["CELL", "HOME", "MAIN", "WORK"],
                                false,
                            );
                        }
                    }
                }
            }
            check.array(p, &at, "addresses", true);
            if let Some(name) = p.get("name")
                && let Some(n) = check.object(name, &format!("{at}.name"))
            {
                for key in ["firstName", "lastName", "middleName", "prefix", "suffix"] {
                    check.string(n, &format!("{at}.name"), key, false);
                }
            }
        }
        Some("UNSUPPORTED_CONTENT") => check.only(o, at, &["type"]),
        _ => {}
    }
}

/// `ChannelIntegrationMessageEgg`.
fn check_message(check: &mut Check, body: &Value, files: &[Upload], accounts: &[Value]) {
    let Some(o) = check.object(body, "body") else {
        return;
    };
    check.only(
        o,
        "body",
        &[
            "text",
            "richText",
            "messageDirection",
            "channelAccountId",
            "senders",
            "recipients",
            "timestamp",
            "attachments",
            "integrationThreadId",
            "integrationIdempotencyId",
            "inReplyToId",
            "associateWithContactId",
            "preResolvedContacts",
        ],
    );
    check.string(o, "body", "text", true);
    check.string(o, "body", "richText", false);
    check.one_of(
        o,
        "body",
        "messageDirection",
        &["INCOMING", "OUTGOING"],
        true,
    );
    check.string(o, "body", "channelAccountId", true);
    check.string(o, "body", "timestamp", true);
    check.date_time(o, "body", "timestamp");
    check.string(o, "body", "integrationThreadId", false);
    check.string(o, "body", "integrationIdempotencyId", false);
    check.string(o, "body", "inReplyToId", false);
    check_participants(check, o, "senders");
    check_participants(check, o, "recipients");
    let attachments = check.array(o, "body", "attachments", true).to_vec();
    for (i, a) in attachments.iter().enumerate() {
        check_attachment(check, a, &format!("body.attachments[{i}]"), files);
    }
    if let Some(Value::String(account)) = o.get("channelAccountId")
        && !accounts.iter().any(|a| a["id"] == *account)
    {
        check.fail(format!("channel account {account} does not exist"));
    }
}

fn check_channel_definition(check: &mut Check, body: &Value, create: bool) {
    let Some(o) = check.object(body, "body") else {
        return;
    };
    check.only(
        o,
        "body",
        &[
            "name",
            "capabilities",
            "webhookUrl",
            "channelAccountConnectionRedirectUrl",
            "channelDescription",
            "channelLogoUrl",
        ],
    );
    check.string(o, "body", "name", create);
    // `PublicChannelIntegrationChannelPatch` requires these three.
    for key in [
        "webhookUrl",
        "channelAccountConnectionRedirectUrl",
        "channelDescription",
        "channelLogoUrl",
    ] {
        let required = !create && matches!(key, "channelDescription" | "channelLogoUrl");
        check.string(o, "body", key, required);
    }
    if !create && !o.contains_key("capabilities") {
        check.fail("body.capabilities is required".into());
    }
    match o.get("capabilities") {
        None if create => check.fail("body.capabilities is required".into()),
        None => {}
        Some(c) => {
            let Some(c) = check.object(c, "body.capabilities") else {
                return;
            };
            let at = "body.capabilities";
            for v in check
                .array(c, at, "deliveryIdentifierTypes", false)
                .to_vec()
            {
                if !v.as_str().is_some_and(|s| IDENTIFIER_TYPES.contains(&s)) {
                    check.fail(format!(
                        "{at}.deliveryIdentifierTypes holds {v}, not one of {IDENTIFIER_TYPES:?} (INVALID_CHANNEL_CAPABILITY_VALUES)"
                    ));
                }
            }
            check.one_of(
                c,
                at,
                "threadingModel",
                &["INTEGRATION_THREAD_ID", "DELIVERY_IDENTIFIER"],
                false,
            );
            for key in [
                "allowInlineImages",
                "allowOutgoingMessages",
                "allowConversationStart",
                "allowMultipleRecipients",
            ] {
                check.boolean(c, at, key, false);
            }
            for key in [
                "maxFileAttachmentCount",
                "maxFileAttachmentSizeBytes",
                "maxTotalFileAttachmentSizeBytes",
            ] {
                check.number(c, at, key, false);
            }
            for key in [
                "richText",
                "outgoingAttachmentTypes",
                "allowedFileAttachmentMimeTypes",
            ] {
                for v in check.array(c, at, key, false).to_vec() {
                    if !v.is_string() {
                        check.fail(format!("{at}.{key} must hold strings, got {v}"));
                    }
                }
            }
        }
    }
}

/// One part of a multipart body: (name, filename, content type, bytes).
type FormPart = (String, Option<String>, Option<String>, Vec<u8>);

/// Reads a multipart/form-data body.
fn multipart(content_type: &str, body: &[u8]) -> Option<Vec<FormPart>> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))?
        .trim_matches('"')
        .to_owned();
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let start = find(rest, delimiter.as_bytes())?;
    rest = &rest[start + delimiter.len()..];
    loop {
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
        rest = &rest[head_end + 4..];
        let end = find(rest, format!("\r\n{delimiter}").as_bytes())?;
        let content = rest[..end].to_vec();
        rest = &rest[end + 2 + delimiter.len()..];
        let mut name = None;
        let mut filename = None;
        let mut ctype = None;
        for line in head.split("\r\n") {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("content-disposition:") {
                for param in line.split(';').skip(1) {
                    let (k, v) = param.trim().split_once('=')?;
                    let v = v.trim_matches('"').to_owned();
                    match k {
                        "name" => name = Some(v),
                        "filename" => filename = Some(v),
                        _ => {}
                    }
                }
            } else if lower.starts_with("content-type:") {
                ctype = Some(line["content-type:".len()..].trim().to_owned());
            }
        }
        parts.push((name?, filename, ctype, content));
    }
}

async fn handle(
    State(state): State<Arc<Mutex<FakeState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type");
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    if method == Method::POST && path.ends_with("/messages") {
        // One publish in flight per thread: a second one while the first is being
        // answered is recorded, and the answer waits `publish_delay`.
        let thread = body["integrationThreadId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let delay = {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            if s.publish_delay.is_zero() {
                Duration::ZERO
            } else {
                if s.publishing.contains(&thread) {
                    s.violations.push(format!(
                        "two publishes in flight at once in thread {thread}"
                    ));
                }
                s.publishing.push(thread.clone());
                s.publish_delay
            }
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = s.publishing.iter().position(|t| *t == thread) {
                s.publishing.remove(i);
            }
        }
    }
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    s.requests.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        authorization: header("authorization"),
        content_type: content_type.clone(),
        body: body.clone(),
        raw: raw.clone(),
        at: now,
    });

    // Failures on demand come first, as a flaky HubSpot would answer.
    if let Some(f) = s
        .failures
        .iter_mut()
        .find(|f| f.times > 0 && path.contains(&f.path_contains))
    {
        f.times -= 1;
        let mut response = (
            StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(f.body.clone()),
        )
            .into_response();
        for (k, v) in &f.headers {
            if let (Ok(k), Ok(v)) = (
                axum::http::HeaderName::from_bytes(k.as_bytes()),
                axum::http::HeaderValue::from_str(v),
            ) {
                response.headers_mut().insert(k, v);
            }
        }
        return response;
    }

    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();

    if segments == ["oauth", "v1", "token"] && method == Method::POST {
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(&raw).into_owned().collect();
        let field = |k: &str| form.get(k).map(String::as_str);
        if field("grant_type") != Some("refresh_token")
            || field("client_id") != Some(CLIENT_ID)
            || field("client_secret") != Some(CLIENT_SECRET)
            || field("refresh_token") != Some(REFRESH_TOKEN)
        {
            s.violations
                .push(format!("oauth token request with wrong fields: {form:?}"));
            return error(
                StatusCode::BAD_REQUEST,
                "BAD_REFRESH_TOKEN",
                "missing or unknown refresh token",
            );
        }
        s.tokens_issued += 1;
        let token = format!("hs-oauth-token-{}", s.tokens_issued);
        s.tokens.push(token.clone());
        return axum::Json(json!({
            "access_token": token, "refresh_token": REFRESH_TOKEN,
            "expires_in": s.token_lifetime_s, "token_type": "bearer"
        }))
        .into_response();
    }

    // Channel definitions take the developer key; everything else the bearer token.
    let definition = matches!(
        segments.as_slice(),
        ["conversations", "v3", "custom-channels"]
    ) || matches!(
        segments.as_slice(),
        ["conversations", "v3", "custom-channels", _]
    );
    if definition {
        if query.get("hapikey").map(String::as_str) != Some(DEVELOPER_API_KEY)
            || query.get("appId").map(String::as_str) != Some(APP_ID)
        {
            s.violations.push(format!(
                "{method} {path} without the developer key and appId"
            ));
            return error(
                StatusCode::UNAUTHORIZED,
                "INVALID_AUTHENTICATION",
                "hapikey and appId are required",
            );
        }
        if header("authorization").is_some() {
            s.violations.push(format!(
                "{method} {path} sent a bearer token with the developer key"
            ));
        }
    } else {
        let token =
            header("authorization").and_then(|a| a.strip_prefix("Bearer ").map(str::to_owned));
        match token {
            Some(t) if s.tokens.contains(&t) => {}
            Some(_) => {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "EXPIRED_AUTHENTICATION",
                    "The OAuth token used to make this call expired",
                );
            }
            None => {
                s.violations
                    .push(format!("{method} {path} without a bearer token"));
                return error(
                    StatusCode::UNAUTHORIZED,
                    "INVALID_AUTHENTICATION",
                    "Authentication credentials not found",
                );
            }
        }
        if query.contains_key("hapikey") {
            s.violations
                .push(format!("{method} {path} leaked the developer key"));
        }
        if let Some((max, window)) = s.limit {
            while s
                .sent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= window)
            {
                s.sent.pop_front();
            }
            if s.sent.len() >= max {
                s.violations.push(format!(
                    "{method} {path}: more than {max} requests in {window:?}"
                ));
                let mut response = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "RATE_LIMITS",
                    "You have reached your ten_secondly_rolling limit.",
                );
                response.headers_mut().insert(
                    "x-hubspot-ratelimit-remaining",
                    axum::http::HeaderValue::from_static("0"),
                );
                return response;
            }
            s.sent.push_back(now);
        }
    }

    let json_body = content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/json"));
    let needs_json =
        matches!(method, Method::POST | Method::PATCH) && segments.first() != Some(&"files");
    if needs_json && !json_body {
        s.violations
            .push(format!("{method} {path} without a JSON content type"));
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "VALIDATION_ERROR",
            "expected application/json",
        );
    }

    match (method.clone(), segments.as_slice()) {
        (Method::POST, ["files", "v3", "files"]) => {
            let Some(parts) = content_type
                .as_deref()
                .filter(|c| c.starts_with("multipart/form-data"))
                .and_then(|c| multipart(c, &raw))
            else {
                s.violations
                    .push("file upload is not multipart/form-data".into());
                return error(
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    "expected multipart/form-data",
                );
            };
            let mut check = Check::new("POST /files/v3/files");
            let field = |n: &str| parts.iter().find(|p| p.0 == n);
            for (name, ..) in &parts {
                if ![
                    "file",
                    "folderId",
                    "folderPath",
                    "fileName",
                    "charsetHunch",
                    "options",
                ]
                .contains(&name.as_str())
                {
                    check.fail(format!("form field {name} is not in the schema"));
                }
            }
            if field("folderId").is_none() && field("folderPath").is_none() {
                check.fail("either folderId or folderPath is required".into());
            }
            let options: Value = field("options")
                .and_then(|p| serde_json::from_slice(&p.3).ok())
                .unwrap_or(Value::Null);
            match options.as_object() {
                Some(o) => check.one_of(
                    o,
                    "options",
                    "access",
                    &[
                        "PUBLIC_INDEXABLE",
                        "PUBLIC_NOT_INDEXABLE",
                        "HIDDEN_INDEXABLE",
                        "HIDDEN_NOT_INDEXABLE",
                        "HIDDEN_PRIVATE",
                        "PRIVATE",
                    ],
                    true,
                ),
                None => check.fail("options must be a JSON string of FileUploadOptions".into()),
            }
            let Some(file) = field("file") else {
                check.fail("the file field is required".into());
                s.violations.extend(check.problems);
                return error(
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    "file is required",
                );
            };
            if !check.problems.is_empty() {
                let message = check.problems.join("; ");
                s.violations.extend(check.problems);
                return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &message);
            }
            s.next_id += 1;
            let id = s.next_id.to_string();
            let upload = Upload {
                id: id.clone(),
                file_name: field("fileName")
                    .map(|p| String::from_utf8_lossy(&p.3).to_string())
                    .or_else(|| file.1.clone())
                    .unwrap_or_default(),
                content_type: file.2.clone().unwrap_or_default(),
                bytes: file.3.clone(),
                options: options.clone(),
                folder_path: field("folderPath").map(|p| String::from_utf8_lossy(&p.3).to_string()),
            };
            let size = upload.bytes.len();
            let name = upload.file_name.clone();
            s.uploads.push(upload);
            (
                StatusCode::CREATED,
                axum::Json(json!({
                    "id": id, "access": options["access"], "archived": false, "name": name, "size": size,
                    "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"
                })),
            )
                .into_response()
        }
        (Method::GET, ["conversations", "v3", "custom-channels"]) => {
            axum::Json(json!({"results": s.channels})).into_response()
        }
        (Method::POST, ["conversations", "v3", "custom-channels"]) => {
            let mut check = Check::new("POST custom-channels");
            check_channel_definition(&mut check, &body, true);
            if !check.problems.is_empty() {
                let message = check.problems.join("; ");
                s.violations.extend(check.problems);
                return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &message);
            }
            s.next_id += 1;
            let mut channel = body.clone();
            channel["id"] = json!(s.next_id.to_string());
            channel["createdAt"] = json!("2026-01-01T00:00:00Z");
            s.channels.push(channel.clone());
            (StatusCode::CREATED, axum::Json(channel)).into_response()
        }
        (Method::PATCH, ["conversations", "v3", "custom-channels", id]) => {
            let mut check = Check::new("PATCH custom-channels/{id}");
            check_channel_definition(&mut check, &body, false);
            if !check.problems.is_empty() {
                let message = check.problems.join("; ");
                s.violations.extend(check.problems);
                return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &message);
            }
            let id = (*id).to_owned();
            let Some(channel) = s.channels.iter_mut().find(|c| c["id"] == id) else {
                return error(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", "no such channel");
            };
            if let (Some(target), Some(update)) = (channel.as_object_mut(), body.as_object()) {
                for (k, v) in update {
                    target.insert(k.clone(), v.clone());
                }
            }
            axum::Json(channel.clone()).into_response()
        }
        (
            Method::GET,
            [
                "conversations",
                "v3",
                "custom-channels",
                channel,
                "channel-accounts",
            ],
        ) => {
            let channel = (*channel).to_owned();
            let results: Vec<Value> = s
                .accounts
                .iter()
                .filter(|a| a["channelId"] == channel)
                .cloned()
                .collect();
            axum::Json(json!({"results": results, "total": results.len()})).into_response()
        }
        (
            Method::GET,
            [
                "conversations",
                "v3",
                "custom-channels",
                channel,
                "channel-accounts",
                id,
            ],
        ) => {
            let (channel, id) = ((*channel).to_owned(), (*id).to_owned());
            match s
                .accounts
                .iter()
                .find(|a| a["channelId"] == channel && a["id"] == id)
            {
                Some(a) => axum::Json(a.clone()).into_response(),
                None => error(
                    StatusCode::NOT_FOUND,
                    "OBJECT_NOT_FOUND",
                    "no such channel account",
                ),
            }
        }
        (
            Method::POST,
            [
                "conversations",
                "v3",
                "custom-channels",
                channel,
                "channel-accounts",
            ],
        ) => {
            let channel = (*channel).to_owned();
            let mut check = Check::new("POST channel-accounts");
            if let Some(o) = check.object(&body, "body") {
                check.only(
                    o,
                    "body",
                    &["inboxId", "name", "authorized", "deliveryIdentifier"],
                );
                check.string(o, "body", "inboxId", true);
                check.string(o, "body", "name", true);
                check.boolean(o, "body", "authorized", true);
                if let Some(d) = o.get("deliveryIdentifier") {
                    check_identifier(&mut check, d, "body.deliveryIdentifier");
                }
            }
            if !s.channels.iter().any(|c| c["id"] == channel) {
                check.fail(format!("channel {channel} does not exist"));
            }
            if !check.problems.is_empty() {
                let message = check.problems.join("; ");
                s.violations.extend(check.problems);
                return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &message);
            }
            s.next_id += 1;
            let account = account_json(
                &s.next_id.to_string(),
                &channel,
                body["inboxId"].as_str().unwrap_or_default(),
                body["name"].as_str().unwrap_or_default(),
                body["authorized"].as_bool().unwrap_or_default(),
                body.get("deliveryIdentifier").cloned(),
            );
            s.accounts.push(account.clone());
            (StatusCode::CREATED, axum::Json(account)).into_response()
        }
        (
            Method::POST,
            [
                "conversations",
                "v3",
                "custom-channels",
                channel,
                "messages",
            ],
        ) => {
            let channel = (*channel).to_owned();
            let mut check = Check::new("POST messages");
            check_message(&mut check, &body, &s.uploads, &s.accounts);
            if !s.channels.iter().any(|c| c["id"] == channel) {
                check.fail(format!("channel {channel} does not exist"));
            }
            if !check.problems.is_empty() {
                let message = check.problems.join("; ");
                s.violations.extend(check.problems);
                return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &message);
            }
            if let Some(key) = body["integrationIdempotencyId"].as_str()
                && let Some(known) = s
                    .messages
                    .iter()
                    .find(|m| m["integrationIdempotencyId"] == key)
                    .cloned()
            {
                s.repeated_publishes.push(key.to_owned());
                return (
                    StatusCode::CREATED,
                    axum::Json(json!({
                        "id": known["id"], "type": "MESSAGE",
                        "conversationsThreadId": known["conversationsThreadId"],
                        "channelId": channel, "channelAccountId": known["channelAccountId"],
                        "direction": known["messageDirection"], "text": known["text"],
                        "senders": [], "recipients": [], "attachments": [],
                        "client": {"clientType": "INTEGRATION"}, "createdAt": "2026-01-01T00:00:00Z",
                        "createdBy": "I-4242", "archived": false, "truncationStatus": "NOT_TRUNCATED"
                    })),
                )
                    .into_response();
            }
            s.next_id += 1;
            let id = format!("hs-msg-{}", s.next_id);
            let key = body["integrationThreadId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let fresh = format!("{}", 880_000 + s.threads.len());
            let thread = s.threads.entry(key).or_insert(fresh).clone();
            let mut stored = body.clone();
            stored["id"] = json!(id);
            stored["conversationsThreadId"] = json!(thread);
            s.messages.push(stored);
            (
                StatusCode::CREATED,
                axum::Json(json!({
                    "id": id, "type": "MESSAGE", "conversationsThreadId": thread,
                    "channelId": channel, "channelAccountId": body["channelAccountId"],
                    "direction": body["messageDirection"], "text": body["text"],
                    "senders": [], "recipients": [], "attachments": [],
                    "client": {"clientType": "INTEGRATION"}, "createdAt": "2026-01-01T00:00:00Z",
                    "createdBy": "I-4242", "archived": false, "truncationStatus": "NOT_TRUNCATED"
                })),
            )
                .into_response()
        }
        (
            Method::PATCH,
            [
                "conversations",
                "v3",
                "custom-channels",
                _channel,
                "messages",
                id,
            ],
        ) => {
            let id = (*id).to_owned();
            let mut check = Check::new("PATCH messages/{id}");
            if let Some(o) = check.object(&body, "body") {
                check.only(o, "body", &["statusType", "errorMessage"]);
                check.one_of(o, "body", "statusType", &["SENT", "FAILED", "READ"], true);
                check.string(o, "body", "errorMessage", false);
            }
            if !check.problems.is_empty() {
                let message = check.problems.join("; ");
                s.violations.extend(check.problems);
                return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &message);
            }
            s.status_updates.push((id.clone(), body.clone()));
            axum::Json(json!({
                "id": id, "type": "MESSAGE", "status": {"statusType": body["statusType"]},
                "archived": false, "createdAt": "2026-01-01T00:00:00Z", "createdBy": "A-1",
                "truncationStatus": "NOT_TRUNCATED"
            }))
            .into_response()
        }
        (Method::GET, ["files", "v3", "files", id, "signed-url"]) => {
            // files.json v3: fileId matches \d+; the query takes size, expirationSeconds
            // (int64) and upscale.
            let mut check = Check::new("GET /files/v3/files/{fileId}/signed-url");
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
                check.fail(format!("fileId {id:?} does not match \\d+"));
            }
            for (key, value) in &query {
                match key.as_str() {
                    "expirationSeconds" if value.parse::<i64>().is_err() => {
                        check.fail(format!("expirationSeconds {value:?} is not an integer"))
                    }
                    "size" if !["thumb", "icon", "medium", "preview"].contains(&value.as_str()) => {
                        check.fail(format!("size {value:?} is not in the enum"))
                    }
                    "expirationSeconds" | "size" | "upscale" => {}
                    other => check.fail(format!("query parameter {other} is not in the spec")),
                }
            }
            if !check.problems.is_empty() {
                let message = check.problems.join("; ");
                s.violations.extend(check.problems);
                return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &message);
            }
            // Each link is new, as HubSpot's are: a test can tell a fresh one from an old.
            let n = s.requests.len();
            let host = header("host").unwrap_or_default();
            axum::Json(json!({
                "url": format!("http://{host}/signed/{id}?n={n}"),
                "expiresAt": "2026-01-01T01:00:00Z", "name": "file", "extension": "bin",
                "size": 3, "type": "DOCUMENT"
            }))
            .into_response()
        }
        _ => {
            s.violations.push(format!(
                "{method} {path} is not an endpoint the bridge should call"
            ));
            error(
                StatusCode::NOT_FOUND,
                "OBJECT_NOT_FOUND",
                "no such endpoint",
            )
        }
    }
}
