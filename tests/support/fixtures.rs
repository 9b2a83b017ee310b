//! The platforms' recorded requests in `tests/fixtures/<platform>/`, found one way by every
//! test: the unit tests beside the adapters (`src/lib.rs` includes this file under
//! `cfg(test)`) and the test binaries (through `support`). The path is rooted at the
//! package, so a test file can move without its fixtures moving with it.

// A test binary or module uses the macro or not; neither is a mistake.
#![allow(unused_macros, unused_imports)]

/// The fixture at `tests/fixtures/<path>`, compiled in as a `&'static str`:
/// `fixture!("telegram/text.json")`.
macro_rules! fixture {
    ($path:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/",
            $path
        ))
    };
}

pub(crate) use fixture;
