//! The generic contract's parser (`adapters::generic::parse_body`): JSON to normalized
//! events, for a plain text message, a message with every part type, and a batch.
//! `cargo bench --bench generic_parse`

use std::hint::black_box;

use channel_bridge::adapters::generic::parse_body;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};

fn text_message(i: usize) -> Value {
    json!({
        "type": "message", "id": format!("app-msg-{i}"), "timestamp": "2026-11-21T10:00:00Z",
        "from": {"id": format!("user-{}", i % 100), "name": "Ana", "email": "ana@example.com"},
        "parts": [{"type": "text", "text": "Where is my order? It was due yesterday."}]
    })
}

fn rich_message() -> Value {
    json!({
        "type": "message", "id": "app-msg-rich", "thread_id": "thread-9",
        "timestamp": "2026-11-21T10:00:00Z", "reply_to": "app-msg-100",
        "from": {"id": "user-42", "name": "Ana", "email": "ana@example.com"},
        "parts": [
            {"type": "text", "text": "Here are the photos"},
            {"type": "image", "media": {"url": "https://files.example.com/a.png",
              "mime_type": "image/png", "size_bytes": 48213}, "caption": "the box"},
            {"type": "file", "media": {"platform_ref": "file-77", "mime_type": "application/pdf",
              "filename": "invoice.pdf"}},
            {"type": "voice_note", "media": {"url": "https://files.example.com/v.ogg",
              "mime_type": "audio/ogg", "duration_s": 7}},
            {"type": "location", "latitude": 52.52, "longitude": 13.405, "name": "Depot"},
            {"type": "contact", "name": "Bo", "phones": ["+4915112345678"], "emails": []},
            {"type": "poll", "question": "kept as unsupported"}
        ]
    })
}

fn parsing(c: &mut Criterion) {
    let cases = [
        ("text", text_message(1)),
        ("seven_parts", rich_message()),
        (
            "status",
            json!({"type": "status", "id": "app-msg-999", "status": "delivered"}),
        ),
        (
            "batch_100_text",
            Value::Array((0..100).map(text_message).collect()),
        ),
    ];
    let mut group = c.benchmark_group("generic_parse");
    for (name, value) in cases {
        let body = serde_json::to_vec(&value).unwrap();
        assert!(parse_body(&body).is_ok(), "{name} parses");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| b.iter(|| parse_body(black_box(&body)).unwrap()));
    }
    let bad = br#"{"type":"message","id":"x","from":{},"parts":[]}"#;
    group.throughput(Throughput::Bytes(bad.len() as u64));
    group.bench_function("invalid_event", |b| {
        b.iter(|| parse_body(black_box(bad)).unwrap_err())
    });
    group.finish();
}

criterion_group!(benches, parsing);
criterion_main!(benches);
