//! Files reps upload to attach to replies: stored whole, found by their token only, and
//! purged after a while unless a message names them.

use std::sync::Arc;

use channel_bridge::model::{Media, MediaPart, Part};
use channel_bridge::store::{Store, Upload};
use chrono::{DateTime, Duration, Utc};

use crate::support::*;

conformance!(
    an_upload_is_stored_whole_and_found_by_its_token_only,
    old_uploads_no_message_names_are_purged_and_used_or_recent_ones_stay,
);

fn upload(n: u8, created_at: DateTime<Utc>) -> Upload {
    Upload {
        id: format!("upl_{n}"),
        token: format!("{n:02x}").repeat(32),
        filename: Some(format!("file-{n}.pdf")),
        content_type: "application/pdf".into(),
        // Every byte value, NUL included: the file is kept as bytes, not text.
        bytes: (0..=255u8).chain([n]).collect(),
        uploaded_by: "alice".into(),
        created_at,
    }
}

async fn an_upload_is_stored_whole_and_found_by_its_token_only(store: Arc<dyn Store>, _: &Backend) {
    let now = Utc::now();
    let stored = upload(1, now);
    store.save_upload(&stored).await.unwrap();
    let found = store
        .upload(&stored.token)
        .await
        .unwrap()
        .expect("found by its token");
    assert_eq!(found.bytes, stored.bytes);
    assert_eq!(found.filename.as_deref(), Some("file-1.pdf"));
    assert_eq!(found.content_type, "application/pdf");
    assert_eq!(found.id, "upl_1");
    assert_eq!(found.uploaded_by, "alice");
    assert_eq!(found.created_at.timestamp_millis(), now.timestamp_millis());
    assert_eq!(
        store.upload("upl_1").await.unwrap(),
        None,
        "the id opens nothing"
    );
    assert_eq!(store.upload(&"ff".repeat(32)).await.unwrap(), None);
}

async fn old_uploads_no_message_names_are_purged_and_used_or_recent_ones_stay(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let now = Utc::now();
    let old = now - Duration::days(2);
    let (used, unused, recent) = (upload(1, old), upload(2, old), upload(3, now));
    for u in [&used, &unused, &recent] {
        store.save_upload(u).await.unwrap();
    }
    let conversation = open_conversation(&*store, &rules("chat"), "ana").await;
    reply(&*store, &conversation, "before the attachment").await;
    let mut with_file = new_reply(&conversation, "here it is");
    with_file.parts.push(Part::File(MediaPart {
        media: Media {
            url: Some(format!("https://desk.example/media/uploads/{}", used.token)),
            ..Media::default()
        },
        caption: None,
    }));
    store.create_reply(with_file).await.unwrap();

    let purged = store.purge_uploads(now - Duration::days(1)).await.unwrap();
    assert_eq!(purged, 1, "only the old upload no message names");
    assert_eq!(store.upload(&unused.token).await.unwrap(), None);
    assert!(
        store.upload(&used.token).await.unwrap().is_some(),
        "a reply uses it"
    );
    assert!(
        store.upload(&recent.token).await.unwrap().is_some(),
        "still within the day"
    );
    assert_eq!(
        store.purge_uploads(now - Duration::days(1)).await.unwrap(),
        0
    );
}
