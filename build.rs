//! Sets the `pg_tests` cfg when `CHANNEL_BRIDGE_TEST_PG` is set at build time. Tests that
//! need PostgreSQL are ignored without it, so `cargo test` reports them as ignored (with
//! how to run them) rather than as passed. Likewise `browser_tests` when `chromium` and
//! `chromedriver` are on the PATH.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(pg_tests)");
    println!("cargo::rustc-check-cfg=cfg(browser_tests)");
    println!("cargo::rerun-if-env-changed=PATH");
    // The console's browser tests (tests/console) need both; without them they are
    // reported ignored.
    if on_path("chromium") && on_path("chromedriver") {
        println!("cargo::rustc-cfg=browser_tests");
    }
    println!("cargo::rerun-if-env-changed=CHANNEL_BRIDGE_TEST_PG");
    if std::env::var_os("CHANNEL_BRIDGE_TEST_PG").is_some() {
        println!("cargo::rustc-cfg=pg_tests");
    }
}

/// Whether an executable named `name` is on the PATH.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
}
