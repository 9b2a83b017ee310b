//! Sets the `pg_tests` cfg when `CHANNEL_BRIDGE_TEST_PG` is set at build time. Tests that
//! need PostgreSQL are ignored without it, so `cargo test` reports them as ignored (with
//! how to run them) rather than as passed.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(pg_tests)");
    println!("cargo::rerun-if-env-changed=CHANNEL_BRIDGE_TEST_PG");
    if std::env::var_os("CHANNEL_BRIDGE_TEST_PG").is_some() {
        println!("cargo::rustc-cfg=pg_tests");
    }
}
