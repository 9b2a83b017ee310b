//! Sets cfgs for tests that need something outside Rust, so that without it `cargo test`
//! reports them as ignored (with what they need) rather than counting them as passed:
//! - `pg_tests` when `CHANNEL_BRIDGE_TEST_PG` is set at build time (PostgreSQL);
//! - `walkthrough_tests` when `bash`, `curl` and `python3` are on the PATH (the README's
//!   walkthrough uses them);
//! - `browser_tests` when `chromium` and `chromedriver` are on the PATH (the console's
//!   browser tests in tests/console);
//! - `imap_tests` when Dovecot (`dovecot-imapd`) is installed: `/usr/sbin/dovecot` or
//!   `dovecot` on the PATH (the IMAP tests in tests/it/imap.rs start one on loopback).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(pg_tests)");
    println!("cargo::rustc-check-cfg=cfg(walkthrough_tests)");
    println!("cargo::rustc-check-cfg=cfg(browser_tests)");
    println!("cargo::rustc-check-cfg=cfg(imap_tests)");
    println!("cargo::rerun-if-changed=/usr/sbin/dovecot");
    println!("cargo::rerun-if-env-changed=CHANNEL_BRIDGE_TEST_PG");
    println!("cargo::rerun-if-env-changed=PATH");
    if std::env::var_os("CHANNEL_BRIDGE_TEST_PG").is_some() {
        println!("cargo::rustc-cfg=pg_tests");
    }
    if ["bash", "curl", "python3"].iter().all(|tool| on_path(tool)) {
        println!("cargo::rustc-cfg=walkthrough_tests");
    }
    if on_path("chromium") && on_path("chromedriver") {
        println!("cargo::rustc-cfg=browser_tests");
    }
    if std::path::Path::new("/usr/sbin/dovecot").is_file() || on_path("dovecot") {
        println!("cargo::rustc-cfg=imap_tests");
    }
}

/// Whether an executable named `tool` is in one of the PATH's folders.
fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}
