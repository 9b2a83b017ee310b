//! Standard Webhooks signatures: what every generic webhook costs before parsing.
//! `cargo bench --bench signature`

use std::hint::black_box;

use axum::http::HeaderMap;
use base64::Engine;
use channel_bridge::adapters::generic::{GenericAdapter, GenericConfig};
use channel_bridge::adapters::signature::{WebhookKey, verify};
use channel_bridge::adapters::{ChannelAdapter, RawRequest};
use channel_bridge::config::Secret;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn secret(seed: &[u8]) -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(seed)
    )
}

/// A typical one-message webhook, padded to about `len` bytes.
fn body(len: usize) -> Vec<u8> {
    let head = r#"{"type":"message","id":"app-msg-123","timestamp":"2026-11-21T10:00:00Z","from":{"id":"user-42","name":"Ana"},"parts":[{"type":"text","text":""#;
    let tail = r#""}]}"#;
    let pad = len.saturating_sub(head.len() + tail.len());
    format!("{head}{}{tail}", "x".repeat(pad)).into_bytes()
}

fn signatures(c: &mut Criterion) {
    let key = WebhookKey::parse(&secret(b"channel-bridge-bench-secret-key!")).unwrap();
    let other = WebhookKey::parse(&secret(b"a-retired-key-still-in-overlap!!")).unwrap();
    let now = chrono::Utc::now();
    let ts = now.timestamp();
    let ts_text = ts.to_string();
    let id = "evt_01JDBENCHMARK";

    let mut group = c.benchmark_group("signature");
    for len in [256usize, 16 * 1024] {
        let body = body(len);
        let sig = key.sign(id, ts, &body);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(format!("sign/{len}B"), |b| {
            b.iter(|| key.sign(black_box(id), ts, black_box(&body)))
        });
        group.bench_function(format!("verify/{len}B"), |b| {
            b.iter(|| {
                verify(
                    std::slice::from_ref(&key),
                    Some(id),
                    Some(&ts_text),
                    Some(black_box(&sig)),
                    black_box(&body),
                    now,
                )
                .unwrap()
            })
        });
    }
    // Key rotation: the retired key is tried first and fails, the current one matches.
    let body = body(256);
    let sig = key.sign(id, ts, &body);
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("verify/256B/second-of-two-keys", |b| {
        let keys = [other.clone(), key.clone()];
        b.iter(|| verify(&keys, Some(id), Some(&ts_text), Some(&sig), &body, now).unwrap())
    });
    group.bench_function("verify/256B/forged", |b| {
        let forged = other.sign(id, ts, &body);
        b.iter(|| {
            verify(
                std::slice::from_ref(&key),
                Some(id),
                Some(&ts_text),
                Some(&forged),
                &body,
                now,
            )
            .unwrap_err()
        })
    });
    group.finish();

    // What ingress calls: the generic adapter's verify on a whole request (header
    // lookups and the key list included).
    let config = GenericConfig {
        secret: Secret::new(secret(b"channel-bridge-bench-secret-key!")),
        outbound_url: "http://127.0.0.1:9/outbound".into(),
    };
    let adapter = GenericAdapter::new(&config, reqwest::Client::new(), &[]);
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert("webhook-id", id.parse().unwrap());
    headers.insert("webhook-timestamp", ts_text.parse().unwrap());
    headers.insert("webhook-signature", sig.parse().unwrap());
    let request = RawRequest::post("http://127.0.0.1/hooks/demo", headers, body.clone());
    c.bench_function("generic_adapter/verify/256B", |b| {
        b.iter(|| adapter.verify(black_box(&request), now).unwrap())
    });
}

criterion_group!(benches, signatures);
criterion_main!(benches);
