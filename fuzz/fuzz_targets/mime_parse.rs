//! Raw RFC 5322 mail (IMAP, body-mime, RawEmail) through parse_raw: refusals are 4xx,
//! nothing panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|raw: &[u8]| channel_bridge_fuzz::mime(raw));
