#!/usr/bin/env bash
# The crash loop of RELIABILITY.md: the real binary under signed webhooks and rep replies,
# SIGKILLed at random moments, restarted on the same store each time; then every
# guarantee is checked (tests/faults/crash_loop.rs). The normal `cargo test` runs it with
# 3 kills; this runs the full loop.
#
#   scripts/crash-loop.sh            # 20 kills
#   scripts/crash-loop.sh 50         # 50 kills
#   CRASH_LOOP_SEED=123 scripts/crash-loop.sh   # replay a run's kill moments
set -euo pipefail
cd "$(dirname "$0")/.."
export CRASH_LOOP_KILLS="${1:-20}"
cargo test --test faults crash_loop -- --nocapture 2>&1 | tee /dev/stderr | grep -q "test result: ok"
