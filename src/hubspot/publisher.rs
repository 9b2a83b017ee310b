//! One publish job: an inbound message of a linked channel into HubSpot. Its media is
//! fetched from the platform by the channel's adapter (with the platform's credentials,
//! under `media.max_bytes` and the address policy, as the media API does), uploaded
//! through the Files API, then the message is published and HubSpot's ids kept. Every
//! step is recorded, so a retried job does not upload or publish twice.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::HubspotClient;
use super::publish::{self, Destination, FileSlot};
use crate::adapters::{FetchError, Receipt, SendError};
use crate::model::MessageId;
use crate::runtime::LiveChannel;
use crate::runtime::Runtime;
use crate::store::hubspot::{HubspotDirection, HubspotLink, PublishSource};
use crate::store::{PublishNote, Store, StoreError};

/// Why a publish did not happen.
#[derive(Debug)]
pub enum PublishError {
    /// HubSpot (or the platform, for media) failed: retried or dead-lettered by the outbox.
    Send(SendError),
    /// There is nothing to publish any more (the message or the channel's link is gone).
    Gone(String),
    /// The store could not be read: the job waits and runs again.
    Store(StoreError),
    /// HubSpot does not take messages for the channel account now (de-authorized or
    /// deleted): the job waits, neither failed nor dead, until it does again.
    Parked(String),
}

impl From<StoreError> for PublishError {
    fn from(e: StoreError) -> Self {
        PublishError::Store(e)
    }
}

/// Publishes `message` (once: a message HubSpot already has is not sent again), or with
/// `note` the follow-up saying it was edited or taken back. On the `last_attempt` the
/// delivery schedule allows, a file the platform still fails to give is left out (and
/// named in the text) rather than the whole message dead-lettered.
pub async fn publish(
    store: &dyn Store,
    client: &HubspotClient,
    runtime: &Runtime,
    message: &MessageId,
    note: Option<&PublishNote>,
    last_attempt: bool,
) -> Result<Receipt, PublishError> {
    if let Some(note) = note {
        return publish_note(store, client, runtime, message, note).await;
    }
    let hubspot = store.hubspot();
    if let Some(link) = hubspot.hubspot_link(message).await? {
        return Ok(Receipt {
            platform_message_id: Some(link.hubspot_message_id),
            note: None,
        });
    }
    let (source, channel, account) = read_source(store, runtime, message).await?;

    if let Some(state) = hubspot
        .hubspot_accounts()
        .await?
        .into_iter()
        .find(|a| a.channel_account_id == account)
        .filter(|a| !a.usable())
    {
        let why = if state.deleted {
            "deleted"
        } else {
            "not authorized"
        };
        return Err(PublishError::Parked(format!(
            "{}HubSpot channel account {account} is {why} ({})",
            crate::store::hubspot::PARKED_PREFIX,
            state.last_event
        )));
    }

    let mut files: BTreeMap<usize, FileSlot> = hubspot
        .hubspot_files(message)
        .await?
        .into_iter()
        .map(|(part, id)| (part as usize, FileSlot::Uploaded(id)))
        .collect();
    let cap = runtime.config.media.max_bytes;
    for (i, part) in source.parts.iter().enumerate() {
        let Some(media) = part.media() else {
            continue;
        };
        if files.contains_key(&i) {
            continue;
        }
        let fetched = match fetch(channel, &media.media, cap).await {
            Ok(fetched) => fetched,
            Err(Fetch::NoFile) => {
                files.insert(i, FileSlot::NoFile);
                continue;
            }
            Err(Fetch::Unavailable(why)) => {
                files.insert(i, FileSlot::Unavailable(why));
                continue;
            }
            Err(Fetch::Retry(why)) if last_attempt => {
                files.insert(
                    i,
                    FileSlot::Unavailable(format!(
                        "the platform still failed after every retry: {why}"
                    )),
                );
                continue;
            }
            Err(Fetch::Retry(why)) => {
                return Err(PublishError::Send(SendError::Retryable {
                    reason: format!("could not fetch part {i}'s file from the platform: {why}"),
                    retry_after: None,
                }));
            }
        };
        let mime = fetched
            .mime
            .or_else(|| media.media.mime_type.clone())
            .unwrap_or_else(|| "application/octet-stream".into());
        let name = publish::file_name(part, i, &mime);
        let file = client
            .upload_file(&name, &mime, fetched.bytes)
            .await
            .map_err(|e| PublishError::Send(e.into_send_error()))?;
        hubspot
            .record_hubspot_file(message, i as u32, &file.id)
            .await?;
        files.insert(i, FileSlot::Uploaded(file.id));
    }

    let egg = publish::message_egg(
        &source,
        &Destination {
            channel_account_id: &account,
            channel_id: &source.channel_id,
            channel_name: &channel.config.name,
        },
        &files,
    );
    let published = client
        .publish_message(&egg)
        .await
        .map_err(|e| PublishError::Send(e.into_send_error()))?;
    hubspot
        .record_hubspot_link(&HubspotLink {
            message_id: message.clone(),
            hubspot_message_id: published.id.clone(),
            hubspot_thread_id: published.conversations_thread_id.clone(),
            direction: HubspotDirection::In,
            published_at: chrono::Utc::now(),
        })
        .await?;
    Ok(Receipt {
        platform_message_id: Some(published.id),
        note: None,
    })
}

/// The message to publish, its channel and the HubSpot channel account it goes to.
async fn read_source<'r>(
    store: &dyn Store,
    runtime: &'r Runtime,
    message: &MessageId,
) -> Result<(PublishSource, &'r LiveChannel, String), PublishError> {
    let source = match store.hubspot().publish_source(message).await {
        Ok(source) => source,
        Err(StoreError::NotFound(what)) => {
            return Err(PublishError::Gone(format!("{what} no longer exists")));
        }
        Err(StoreError::Invalid(why)) => return Err(PublishError::Gone(why)),
        Err(e) => return Err(e.into()),
    };
    tracing::Span::current().record("conversation_id", source.conversation_id.as_str());
    let channel = runtime.channel(&source.channel_id);
    let Some((channel, account)) = channel.and_then(|c| {
        let account = c.config.hubspot.as_ref()?.channel_account_id.clone();
        Some((c, account))
    }) else {
        return Err(PublishError::Gone(format!(
            "channel {} is no longer linked to HubSpot",
            source.channel_id
        )));
    };
    Ok((source, channel, account))
}

/// Publishes the note that `message` was edited or taken back, in reply to the message
/// as HubSpot has it. Its `integrationIdempotencyId` is the message's id and the note's
/// key, so a retried note is one note to HubSpot.
async fn publish_note(
    store: &dyn Store,
    client: &HubspotClient,
    runtime: &Runtime,
    message: &MessageId,
    note: &PublishNote,
) -> Result<Receipt, PublishError> {
    let (source, channel, account) = read_source(store, runtime, message).await?;
    // The message's own publish ran before (same conversation, queued earlier); when it
    // was dead-lettered instead, the note still tells the rep, just not in reply.
    let original = store
        .hubspot()
        .hubspot_link(message)
        .await?
        .map(|link| link.hubspot_message_id);
    let egg = publish::note_egg(
        &source,
        &Destination {
            channel_account_id: &account,
            channel_id: &source.channel_id,
            channel_name: &channel.config.name,
        },
        note,
        original,
        chrono::Utc::now(),
    );
    let published = client
        .publish_message(&egg)
        .await
        .map_err(|e| PublishError::Send(e.into_send_error()))?;
    Ok(Receipt {
        platform_message_id: Some(published.id),
        note: None,
    })
}

struct Fetched {
    bytes: Bytes,
    mime: Option<String>,
}

enum Fetch {
    /// The part has no file to fetch: publish without one.
    NoFile,
    /// The file is not to be had: publish without it.
    Unavailable(String),
    /// The platform failed for now: try the job again later.
    Retry(String),
}

/// The file of an inbound media part, through the channel's adapter, read under `cap`.
async fn fetch(
    channel: &LiveChannel,
    media: &crate::model::Media,
    cap: u64,
) -> Result<Fetched, Fetch> {
    let too_large = || Fetch::Unavailable(format!("larger than media.max_bytes ({cap} bytes)"));
    let fetched = channel
        .adapter
        .fetch_media(media, &channel.media)
        .await
        .map_err(|e| match e {
            FetchError::Upstream(why) => Fetch::Retry(why),
            FetchError::NoMedia => Fetch::NoFile,
            e @ (FetchError::Gone(_) | FetchError::Refused(_)) => Fetch::Unavailable(e.to_string()),
        })?;
    let mut response = fetched.response;
    if response.content_length().is_some_and(|len| len > cap) {
        return Err(too_large());
    }
    let mime = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|_| Fetch::Retry("the platform broke off the download".into()))?
    {
        if (body.len() + chunk.len()) as u64 > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        bytes: Bytes::from(body),
        mime,
    })
}
