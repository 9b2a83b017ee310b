//! Standard Webhooks (the generic channel's signature check): any webhook-id,
//! webhook-timestamp and webhook-signature over any body, sometimes with a correct
//! signature; refusals are 4xx, nothing panics, and a correct signature on a fresh
//! timestamp always verifies.
#![no_main]

use channel_bridge::adapters::signature::WebhookKey;
use channel_bridge_fuzz::{GENERIC_SECRET, check, request};

#[derive(arbitrary::Arbitrary, Debug)]
struct Input<'a> {
    id: &'a str,
    timestamp: &'a str,
    signature: &'a str,
    sign_correctly: bool,
    body: &'a [u8],
}

libfuzzer_sys::fuzz_target!(|input: Input<'_>| {
    let mut headers = vec![
        ("webhook-id", input.id.to_owned()),
        ("webhook-timestamp", input.timestamp.to_owned()),
        ("webhook-signature", input.signature.to_owned()),
    ];
    if input.sign_correctly {
        let now = chrono::Utc::now().timestamp();
        let key = WebhookKey::parse(GENERIC_SECRET).expect("valid secret");
        headers[1].1 = now.to_string();
        headers[2].1 = key.sign(input.id, now, input.body);
    }
    let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let request = request("generic", &pairs, input.body);
    check("generic", &request);
    // An id HTTP can carry as text (visible ASCII) arrives as sent.
    let plain_id = input.id.bytes().all(|b| (0x20..0x7f).contains(&b));
    if input.sign_correctly && plain_id && request.headers.len() == 4 {
        let adapter = channel_bridge_fuzz::adapter("generic");
        assert!(
            adapter.verify(&request, chrono::Utc::now()).is_ok(),
            "a correct signature was refused"
        );
    }
});
