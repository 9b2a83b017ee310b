//! Mailgun's inbound form: any body through verify and parse; refusals are 4xx, nothing
//! panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|body: &[u8]| channel_bridge_fuzz::parse("mailgun", body));
