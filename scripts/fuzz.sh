#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for RUNS iterations (default 1,000,000), two at a
# time, seeding the parsers with the platform fixtures; prints each target's last lines.
# Stable toolchain: RUSTC_BOOTSTRAP=1 and no sanitizer (RELIABILITY.md, "Fuzzing").
#
#   cargo install cargo-fuzz    # once
#   scripts/fuzz.sh             # every target, 1M runs each
#   RUNS=100000 scripts/fuzz.sh telegram_parse viber_verify
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1
RUNS="${RUNS:-1000000}"
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build --sanitizer none >/dev/null
mkdir -p logs
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  platform="${target%%_*}"
  if [[ "$target" == *_parse && -d "../tests/fixtures/$platform" ]]; then
    cp ../tests/fixtures/"$platform"/* "corpus/$target/" 2>/dev/null || true
  fi
done
printf '%s\n' "${targets[@]}" | xargs -P 2 -I{} sh -c \
  'cargo fuzz run --sanitizer none {} -- -runs='"$RUNS"' -print_final_stats=1 > logs/{}.log 2>&1; echo "{}: exit $?"'
for target in "${targets[@]}"; do
  echo "== $target"
  grep -E "^Done|stat::number_of_executed_units|stat::peak_rss_mb|panicked|SUMMARY|crash-" "logs/$target.log" || true
done
