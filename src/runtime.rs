//! The live configuration: the validated config with an adapter built for each channel,
//! held in an `ArcSwap` so a reload swaps it atomically while every request and job keeps
//! the snapshot it started with.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use chrono::{DateTime, Utc};

use crate::adapters::fetch::MediaClient;
use crate::adapters::{ChannelAdapter, RetiredSecret};
use crate::config::{ApiToken, ChannelConfig, Config};
use crate::store::ChannelRules;

/// A channel ready to serve.
#[derive(Clone)]
pub struct LiveChannel {
    pub config: ChannelConfig,
    pub rules: ChannelRules,
    pub adapter: Arc<dyn ChannelAdapter>,
    /// Verification secrets replaced by reloads and still accepted.
    pub retired: Vec<RetiredSecret>,
    /// Fetches media URLs from this channel's payloads (public addresses only, unless
    /// `media_allow_private`).
    pub media: MediaClient,
}

/// One consistent snapshot of everything config decides.
pub struct Runtime {
    pub config: Arc<Config>,
    channels: HashMap<String, LiveChannel>,
    /// The SMTP sender, when `[smtp]` is configured.
    pub mailer: Option<Arc<crate::adapters::email::Mailer>>,
    /// The HubSpot client, when `[hubspot]` is configured (kept across reloads that leave
    /// the section as it was, with its OAuth token and limiter).
    pub hubspot: Option<Arc<crate::hubspot::HubspotClient>>,
    /// Channels a reload removed, and when: their webhooks answer 503 for
    /// `reload.removed_channel_grace_s` (a restart forgets them).
    removed: HashMap<String, DateTime<Utc>>,
}

/// The swappable current runtime.
pub type SharedRuntime = Arc<ArcSwap<Runtime>>;

impl Runtime {
    /// The runtime for a freshly started daemon.
    pub fn build(config: Config, http: &reqwest::Client) -> Self {
        Self::rebuild(None, config, http, Utc::now())
    }

    /// The runtime for `config`, reusing what it can of `previous` (start-up passes none):
    /// a channel whose settings did not change keeps its adapter untouched; a channel
    /// whose verification secret changed keeps accepting the old one for
    /// `reload.secret_overlap_s`.
    pub fn rebuild(
        previous: Option<&Runtime>,
        config: Config,
        http: &reqwest::Client,
        now: DateTime<Utc>,
    ) -> Self {
        let overlap = chrono::Duration::seconds(config.reload.secret_overlap_s as i64);
        // Two media clients serve every channel: which one depends on the channel's
        // media_allow_private.
        let media_timeout = Duration::from_millis(config.media.timeout_ms);
        let public_media = MediaClient::new(media_timeout, false);
        let private_media = MediaClient::new(media_timeout, true);
        let channels = config
            .channels
            .iter()
            .map(|(id, channel)| {
                let before = previous.and_then(|p| p.channels.get(id));
                // Rules are cheap and depend on more than the channel (reps, pipelines):
                // always recomputed. The adapter is kept when its channel did not change.
                let rules = ChannelRules::new(id, channel, &config);
                // An email channel sends through [smtp]: a change there rebuilds it too.
                let smtp_changed =
                    matches!(channel.adapter, crate::adapters::AdapterConfig::Email(_))
                        && previous.is_some_and(|p| p.config.smtp != config.smtp);
                let media = if channel.media_allow_private {
                    private_media.clone()
                } else {
                    public_media.clone()
                };
                let live = match before {
                    Some(old) if old.config == *channel && !smtp_changed => LiveChannel {
                        rules,
                        media,
                        ..old.clone()
                    },
                    _ => {
                        let mut retired: Vec<RetiredSecret> = before
                            .map(|old| {
                                old.retired
                                    .iter()
                                    .filter(|r| r.until > now)
                                    .cloned()
                                    .collect()
                            })
                            .unwrap_or_default();
                        if let Some(old_secret) =
                            before.and_then(|old| old.config.adapter.verification_secret())
                            && Some(old_secret) != channel.adapter.verification_secret()
                        {
                            retired.push(RetiredSecret {
                                secret: old_secret.clone(),
                                until: now + overlap,
                            });
                        }
                        LiveChannel {
                            config: channel.clone(),
                            rules,
                            adapter: channel.adapter.build(
                                http.clone(),
                                &retired,
                                config
                                    .smtp
                                    .as_ref()
                                    .map(|s| (s, config.delivery.timeout_ms)),
                                &media,
                            ),
                            retired,
                            media,
                        }
                    }
                };
                (id.clone(), live)
            })
            .collect();
        let mailer = match (&config.smtp, previous.and_then(|p| p.mailer.clone())) {
            (None, _) => None,
            (Some(smtp), Some(old)) if old.config() == smtp => Some(old),
            (Some(smtp), _) => {
                match crate::adapters::email::Mailer::new(smtp, config.delivery.timeout_ms) {
                    Ok(mailer) => Some(Arc::new(mailer)),
                    Err(e) => {
                        tracing::error!(error = %e, "Cannot set up SMTP; emails wait until [smtp] is fixed.");
                        None
                    }
                }
            }
        };
        let hubspot = match (&config.hubspot, previous.and_then(|p| p.hubspot.clone())) {
            (None, _) => None,
            (Some(hubspot), Some(old)) if old.config() == hubspot => Some(old),
            (Some(hubspot), _) => Some(Arc::new(crate::hubspot::HubspotClient::new(
                hubspot,
                http.clone(),
            ))),
        };
        let removed = removed_channels(previous, &config, now);
        Self {
            config: Arc::new(config),
            channels,
            mailer,
            hubspot,
            removed,
        }
    }

    /// When a reload removed this channel, if it did so within the grace period at `now`.
    pub fn recently_removed(&self, id: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let grace = chrono::Duration::seconds(self.config.reload.removed_channel_grace_s as i64);
        self.removed.get(id).copied().filter(|at| now < *at + grace)
    }

    /// The channel with this id, enabled or not.
    pub fn channel(&self, id: &str) -> Option<&LiveChannel> {
        self.channels.get(id)
    }

    /// Ids of the channels whose jobs may run now (with the email queue when SMTP is set).
    pub fn enabled_channels(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .channels
            .iter()
            .filter(|(_, c)| c.config.enabled)
            .map(|(id, _)| id.clone())
            .collect();
        if self.mailer.is_some() {
            ids.push(crate::store::JOB_CHANNEL_SMTP.to_owned());
        }
        if self.hubspot.is_some() {
            ids.push(crate::store::JOB_CHANNEL_HUBSPOT.to_owned());
        }
        ids.sort();
        ids
    }

    /// Rules of every channel, for work that spans channels (backfill after presence).
    pub fn all_rules(&self) -> Vec<ChannelRules> {
        self.channels.values().map(|c| c.rules.clone()).collect()
    }

    /// The configured token matching a presented bearer token. Compares hashes in
    /// constant time and always checks every token, so timing says nothing.
    pub fn token(&self, presented: &str) -> Option<&ApiToken> {
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for token in &self.config.api.tokens {
            if bool::from(token.sha256.ct_eq(&hash)) {
                found = Some(token);
            }
        }
        found
    }

    pub fn retry_schedule(&self) -> &[u64] {
        &self.config.delivery.retry_schedule_ms
    }

    /// Delay before a new job's first attempt.
    pub fn first_delay(&self) -> Duration {
        Duration::from_millis(self.retry_schedule().first().copied().unwrap_or(0))
    }
}

/// The channels removed by reloads and still within their grace period: those gone from
/// `config` now, plus those removed earlier and not added back.
fn removed_channels(
    previous: Option<&Runtime>,
    config: &Config,
    now: DateTime<Utc>,
) -> HashMap<String, DateTime<Utc>> {
    let Some(previous) = previous else {
        return HashMap::new();
    };
    let grace = chrono::Duration::seconds(config.reload.removed_channel_grace_s as i64);
    let just_removed = previous
        .channels
        .keys()
        .filter(|id| !config.channels.contains_key(*id))
        .map(|id| (id.clone(), now));
    previous
        .removed
        .iter()
        .filter(|(id, at)| !config.channels.contains_key(*id) && now < **at + grace)
        .map(|(id, at)| (id.clone(), *at))
        .chain(just_removed)
        .collect()
}

/// The HTTP client every adapter sends with: one connection pool, the configured timeout.
/// It follows no redirect: a send carries a signed reply or a platform credential, and a
/// hop the operator did not configure could lead anywhere (an internal address, another
/// origin), so a 3xx is a failure that names the status instead.
pub fn http_client(config: &Config) -> reqwest::Client {
    let timeout = Duration::from_millis(config.delivery.timeout_ms);
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("channel-bridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the TLS backend initializes")
}
