//! Data retention: what is kept only for a while goes when its time is up. Deleted
//! tickets leave the trash after `tickets.trash_retention_days`; the raw platform payloads
//! of inbound messages are cleared after `retention.raw_payload_days`; files uploaded for a
//! reply that no message names go a day after their upload (a rep who attached a file and
//! never sent it). Runs at start-up
//! and then every hour, with the config of the moment (a reload changes the periods).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::store::{Store, StoreError};

/// How often retention is applied.
const EVERY: Duration = Duration::from_secs(3600);

/// What one pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Tickets (with their conversations and messages) deleted for good.
    pub tickets: u64,
    /// Inbound messages whose raw payload was cleared.
    pub raw_payloads: u64,
    /// Uploaded files no message named a day after their upload.
    pub uploads: u64,
}

/// How long an uploaded file waits for a reply to name it.
pub const UNUSED_UPLOAD_TTL: chrono::Duration = chrono::Duration::days(1);

/// Applies retention as of `now`: both purges run even if the other fails.
pub async fn purge(store: &dyn Store, config: &Config, now: DateTime<Utc>) -> Purged {
    let mut purged = Purged::default();
    let days = |d: u32| chrono::Duration::days(d.into());
    match store
        .purge_trash(now - days(config.tickets.trash_retention_days))
        .await
    {
        Ok(n) => purged.tickets = n,
        Err(e) => warn("the trash", &e),
    }
    if config.retention.raw_payload_days > 0 {
        match store
            .purge_raw_payloads(now - days(config.retention.raw_payload_days))
            .await
        {
            Ok(n) => purged.raw_payloads = n,
            Err(e) => warn("raw payloads", &e),
        }
        // HubSpot's webhook events keep their key (a late retry stays a duplicate), not
        // their body.
        match store
            .hubspot()
            .clear_event_payloads(now - days(config.retention.raw_payload_days))
            .await
        {
            Ok(n) => purged.raw_payloads += n,
            Err(e) => warn("HubSpot event payloads", &e),
        }
    }
    match store.purge_uploads(now - UNUSED_UPLOAD_TTL).await {
        Ok(n) => purged.uploads = n,
        Err(e) => warn("unused uploads", &e),
    }
    if purged != Purged::default() {
        tracing::info!(
            tickets = purged.tickets,
            raw_payloads = purged.raw_payloads,
            uploads = purged.uploads,
            "Purged data past its retention."
        );
    }
    purged
}

fn warn(what: &str, error: &StoreError) {
    tracing::warn!(error = %error, "Could not purge {what}; trying again in an hour.");
}

/// Applies retention now and every hour until `shutdown`.
pub async fn run(
    store: std::sync::Arc<dyn Store>,
    runtime: crate::runtime::SharedRuntime,
    shutdown: CancellationToken,
) {
    loop {
        let config = runtime.load_full();
        purge(store.as_ref(), &config.config, Utc::now()).await;
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_CONFIG;
    use crate::model::event::{InboundContact, InboundEvent, InboundMessage};
    use crate::model::{Identifier, Part, TextPart};
    use crate::store::ChannelRules;
    use crate::store::sqlite::SqliteStore;

    fn rules() -> ChannelRules {
        ChannelRules::for_tests("demo")
    }

    fn message(id: String) -> InboundEvent {
        InboundEvent::Message(InboundMessage {
            conversation_hint: None,
            platform_message_id: id.clone(),
            thread_id: None,
            from: InboundContact {
                identifier: Identifier {
                    kind: "app_user".into(),
                    value: "user-1".into(),
                },
                display_name: None,
                email: None,
            },
            reply_to: None,
            parts: vec![Part::Text(TextPart { text: id.clone() })],
            sent_at: None,
            raw: serde_json::json!({"platform": "payload", "id": id}),
        })
    }

    /// (messages with a raw payload, messages with parts) as the database holds them.
    fn counts(db: &std::path::Path) -> (i64, i64) {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.query_row("SELECT count(raw), count(parts) FROM messages", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap()
    }

    fn config(raw_payload_days: u32) -> Config {
        let mut config = crate::config::load_str(DEFAULT_CONFIG, std::iter::empty()).unwrap();
        config.retention.raw_payload_days = raw_payload_days;
        config
    }

    #[tokio::test]
    async fn raw_payloads_go_after_the_configured_days_and_0_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let store = SqliteStore::open(&db).await.unwrap();
        let events = (0..3).map(|i| message(format!("m-{i}"))).collect();
        store.ingest(&rules(), events).await.unwrap();
        let now = Utc::now();
        let day = chrono::Duration::days(1);

        let purged = purge(&store, &config(30), now + day * 29).await;
        assert_eq!(purged, Purged::default(), "within retention");
        assert_eq!(counts(&db), (3, 3));

        let purged = purge(&store, &config(0), now + day * 3650).await;
        assert_eq!(purged.raw_payloads, 0, "0 keeps them forever");
        assert_eq!(counts(&db), (3, 3));

        let purged = purge(&store, &config(30), now + day * 31).await;
        assert_eq!(purged.raw_payloads, 3);
        assert_eq!(counts(&db), (0, 3), "the messages stay");
        store.close().await;
    }
}
