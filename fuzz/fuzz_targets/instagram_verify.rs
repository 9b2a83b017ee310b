//! instagram: any signature header over any body; refusals are 4xx, nothing panics.
#![no_main]

#[derive(arbitrary::Arbitrary, Debug)]
struct Input<'a> {
    signature: &'a str,
    body: &'a [u8],
}

libfuzzer_sys::fuzz_target!(|input: Input<'_>| {
    channel_bridge_fuzz::verify("instagram", input.signature, input.body)
});
