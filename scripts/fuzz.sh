#!/usr/bin/env bash
# A bounded fuzzing campaign of every cargo-fuzz target in fuzz/, on the
# stable toolchain (docs/FUZZING.md). scripts/test.sh runs it after the
# tests; it fails when a target crashes, leaks past the memory limit or
# hangs, and prints the report and the input that did it.
#
#   scripts/fuzz.sh                    every target, APPTOKEN_FUZZ_SECS (10) seconds each
#   scripts/fuzz.sh --secs 300 T...    these targets, five minutes each
#   scripts/fuzz.sh --long [T...]      a longer campaign: 600 s each, optimised build (opt-level 3)
#   scripts/fuzz.sh --build-only       install the tools and build the targets, no campaign
#                                      (scripts/test.sh runs it beside the tests, then the campaign)
#
# Environment: APPTOKEN_FUZZ_SECS (seconds per target; 0 skips the campaign,
# saying so), APPTOKEN_FUZZ_OPT_LEVEL (the build's opt-level: 0 for the short
# campaign, 3 with --long), APPTOKEN_FUZZ_RSS_MB (2048), APPTOKEN_FUZZ_TIMEOUT
# (seconds one input may take, 30), APPTOKEN_FUZZ_JOBS (targets fuzzed at
# once, one per core by default), APPTOKEN_TOOLS_DIR (where cargo-fuzz is
# installed, ~/.cache/apptoken/tools).
#
# Seeds are fuzz/seeds/<target>/ (committed); what a campaign finds goes to
# fuzz/corpus/<target>/ and crashes to fuzz/artifacts/<target>/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

say() { printf '==> %s\n' "$*"; }
die() { printf 'fuzz.sh: %s\n' "$*" >&2; exit 1; }
need_cmd() { command -v "$1" >/dev/null 2>&1; }

CARGO_FUZZ_VERSION=0.13.2
secs="${APPTOKEN_FUZZ_SECS:-10}"
opt="${APPTOKEN_FUZZ_OPT_LEVEL:-}"
rss="${APPTOKEN_FUZZ_RSS_MB:-2048}"
timeout="${APPTOKEN_FUZZ_TIMEOUT:-30}"
jobs="${APPTOKEN_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}"
tools="${APPTOKEN_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/apptoken/tools}"
targets=()
build_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --long) secs="${APPTOKEN_FUZZ_SECS:-600}"; opt="${opt:-3}"; shift ;;
    --secs) [ $# -ge 2 ] || die "--secs needs a number"; secs="$2"; shift 2 ;;
    --build-only) build_only=1; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) targets+=("$1"); shift ;;
  esac
done
opt="${opt:-0}"
case "$secs" in ''|*[!0-9]*) die "seconds per target must be a whole number, not '$secs'" ;; esac
case "$jobs" in ''|*[!0-9]*|0) die "APPTOKEN_FUZZ_JOBS must be a positive number, not '$jobs'" ;; esac
if [ "$secs" -eq 0 ]; then
  say "fuzzing SKIPPED: APPTOKEN_FUZZ_SECS=0"
  exit 0
fi

# Tools: cargo-fuzz (pinned, in a cache outside the work tree so that a
# fresh clone on the same machine reuses it), and a C++ compiler for
# libFuzzer itself. Installed when missing, never skipped.
apt_install() {
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
need_cmd c++ || apt_install g++
need_cmd c++ || die "no C++ compiler (c++) after installing g++"
if ! "$tools/bin/cargo-fuzz" --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
  say "installing cargo-fuzz $CARGO_FUZZ_VERSION into $tools"
  start=$SECONDS
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$tools" --quiet
  say "cargo-fuzz installed in $((SECONDS - start)) s"
fi
export PATH="$tools/bin:$PATH"
cargo fuzz --version >/dev/null || die "cargo fuzz does not run after installing it into $tools"

# The fuzz crate's lock file must be current (it is committed; cargo-fuzz
# has no --locked of its own).
cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null \
  || die "fuzz/Cargo.lock is out of date: run 'cargo update --workspace --manifest-path fuzz/Cargo.toml' and commit it"

# Built once: stable toolchain, no sanitizer (the code is safe Rust: panics
# and overflow checks are the oracles), release mode with debug assertions,
# 16 codegen units (cargo-fuzz's default of 1 doubles the build).
build_flags=(--sanitizer none --codegen-units 16)
export CARGO_PROFILE_RELEASE_OPT_LEVEL="$opt"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
say "cargo fuzz build (opt-level $opt)"
start=$SECONDS
cargo fuzz build "${build_flags[@]}"
say "fuzz targets built in $((SECONDS - start)) s"
if [ "$build_only" -eq 1 ]; then
  exit 0
fi

mapfile -t all < <(cargo fuzz list)
[ ${#all[@]} -gt 0 ] || die "cargo fuzz list found no target"
if [ ${#targets[@]} -eq 0 ]; then
  targets=("${all[@]}")
else
  for t in "${targets[@]}"; do
    printf '%s\n' "${all[@]}" | grep -qx "$t" || die "no fuzz target '$t' (targets: ${all[*]})"
  done
fi

# Scratch files of the targets (daemon_config writes its credential files
# there) stay in the git-ignored target dir.
export TMPDIR="$ROOT/fuzz/target/tmp"
logs="$ROOT/fuzz/target/logs"
mkdir -p "$TMPDIR" "$logs"

# One target's campaign; its summary goes to $logs/<target>.result.
run_one() {
  local t="$1" log="$logs/$1.log" res="$logs/$1.result"
  mkdir -p "fuzz/corpus/$t"
  if cargo fuzz run "${build_flags[@]}" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
      -max_total_time="$secs" -rss_limit_mb="$rss" -malloc_limit_mb="$rss" \
      -timeout="$timeout" -print_final_stats=1 >"$log" 2>&1; then
    local runs rate peak cov corp
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 || true)
    printf '    %-20s ok: %s inputs (%s/s), %s, %s, peak rss %s MB\n' \
      "$t" "${runs:-?}" "${rate:-?}" "${cov:-cov: ?}" "${corp:-corp: ?}" "${peak:-?}" >"$res"
  else
    {
      printf '    %-20s FAILED (log: %s)\n' "$t" "$log"
      sed -n '/panicked at\|ERROR: libFuzzer\|==[0-9]*== ERROR\|^SUMMARY/,$p' "$log" | head -60 | sed 's/^/      /'
    } >"$res"
    return 1
  fi
}

for t in "${targets[@]}"; do
  [ -d "fuzz/seeds/$t" ] || die "fuzz target '$t' has no seeds in fuzz/seeds/$t"
  rm -f "$logs/$t.result"
done
say "fuzzing ${#targets[@]} targets, ${secs} s each, $jobs at a time (rss limit ${rss} MB, ${timeout} s per input)"
start=$SECONDS
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_one "$t" &
done
wait || true
failed=()
for t in "${targets[@]}"; do
  if [ -f "$logs/$t.result" ]; then cat "$logs/$t.result"; else echo "    $t: no result (log: $logs/$t.log)"; fi
  grep -q ' ok: ' "$logs/$t.result" 2>/dev/null || failed+=("$t")
done
say "fuzzing took $((SECONDS - start)) s"

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found failures in: ${failed[*]}" >&2
  echo "minimise with: cargo fuzz tmin --sanitizer none <target> fuzz/artifacts/<target>/<file>;" \
    "replay with: cargo fuzz run --sanitizer none <target> <file>" >&2
  exit 1
fi
say "fuzzing: ${#targets[@]} targets, no crash"
