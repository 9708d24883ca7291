#!/usr/bin/env bash
# The project's one test command (README.md). It first installs what the
# tests need and is missing, then checks formatting and lints, then runs every
# test of the workspace (unit, end-to-end, doc examples).
#
# Nothing here reaches the internet but the package registries; every server
# a test starts binds 127.0.0.1 on an ephemeral port and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }

need_cmd() { command -v "$1" >/dev/null 2>&1; }

apt_install() {
  # Installs Debian packages when they are missing (CI and fresh machines run as root).
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

if ! need_cmd cargo; then
  echo "cargo is missing: install the Rust toolchain (https://rustup.rs) and run this again" >&2
  exit 1
fi
# The TLS and crypto stack (aws-lc-rs) builds C code: it needs a C compiler.
need_cmd cc || apt_install gcc libc6-dev
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy >/dev/null 2>&1 || true

# The shared-cache tests start their own redis-server (on a unix socket).
need_cmd redis-server || apt_install redis-server
# The emulator's benchmark compares with `openssl speed`; the fixtures script uses it too.
need_cmd openssl || apt_install openssl

# Peer clients (MSAL Python) in a git-ignored virtualenv; tests that drive
# them fail, never skip, when it is missing.
venv_ok() { [ -x .venv/bin/python ] && .venv/bin/python -c "import msal" >/dev/null 2>&1 \
  && cmp -s tests/peers/requirements.txt .venv/requirements.installed; }
if ! venv_ok; then
  need_cmd python3 || apt_install python3
  python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv
  say "creating .venv with $(grep -v '^#' tests/peers/requirements.txt | xargs)"
  rm -rf .venv
  python3 -m venv .venv || { apt_install python3-venv; python3 -m venv .venv; }
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/peers/requirements.txt
  cp tests/peers/requirements.txt .venv/requirements.installed
fi
export APPTOKEN_PYTHON="$PWD/.venv/bin/python"

# The generic OpenID provider of the OIDC tests (node's oidc-provider, pinned
# by its lock file) in a git-ignored node_modules; the tests fail, never
# skip, without it.
oidc_peer=tests/peers/oidc-provider
need_cmd node && need_cmd npm || apt_install nodejs npm
if ! cmp -s "$oidc_peer/package-lock.json" "$oidc_peer/node_modules/.installed-lock.json" 2>/dev/null; then
  say "installing node's oidc-provider ($oidc_peer, npm ci)"
  (cd "$oidc_peer" && npm ci --silent --no-audit --no-fund)
  cp "$oidc_peer/package-lock.json" "$oidc_peer/node_modules/.installed-lock.json"
fi

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "cargo check of the library without its optional features"
cargo check -p apptoken --no-default-features --lib --locked

say "cargo doc of the libraries (broken links and bad doc markup are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps -p apptoken -p apptoken-daemon -p apptoken-emulator -p apptoken-redis -p apptoken-broker

# The guard of issue #20: no test may send a packet to IMDS's real address.
# As root (CI), an OUTPUT rule rejects anything aimed at 169.254.169.254 — the
# packet never leaves the machine — and counts it; the run fails if the count
# grew. Elsewhere the guard cannot be set, and this says so.
imds_guard=off
imds_count() { iptables -w -L OUTPUT -n -v -x 2>/dev/null | awk '/apptoken-imds-guard/ {print $1; exit}'; }
if [ "$(id -u)" -eq 0 ]; then
  need_cmd iptables || apt_install iptables
  if imds_count | grep -q . || iptables -w -I OUTPUT -d 169.254.169.254 \
      -m comment --comment apptoken-imds-guard -j REJECT 2>/dev/null; then
    imds_guard=on
  fi
fi
if [ "$imds_guard" = on ]; then
  imds_before=$(imds_count)
  say "169.254.169.254 guard on (an iptables rule rejects and counts packets to it; $imds_before so far)"
else
  say "169.254.169.254 guard OFF: it needs root and iptables (CI has both); the tests still point IMDS at loopback"
fi

say "cargo test: building"
cargo test --workspace --locked --no-run "$@"

# The fuzz targets' instrumented build (its own target dir, fuzz/target)
# runs beside the tests: they wait on servers and children more than they
# compute, so the two share the machine's cores well.
mkdir -p fuzz/target
fuzz_build_log="fuzz/target/build.log"
say "fuzz targets: building beside the tests (log: $fuzz_build_log)"
./scripts/fuzz.sh --build-only >"$fuzz_build_log" 2>&1 &
fuzz_build_pid=$!
# A failing test ends this script: the build beside it stops too.
trap 'kill "$fuzz_build_pid" 2>/dev/null || true' EXIT

say "cargo test: running"
cargo test --workspace --locked "$@"

if ! wait "$fuzz_build_pid"; then
  tail -40 "$fuzz_build_log" >&2
  echo "building the fuzz targets failed (log: $fuzz_build_log)" >&2
  exit 1
fi
trap - EXIT
grep '^==>' "$fuzz_build_log" || true

if [ "$imds_guard" = on ]; then
  imds_after=$(imds_count)
  if [ "${imds_after:-0}" -gt "${imds_before:-0}" ]; then
    echo "the tests tried to send $((imds_after - imds_before)) packet(s) to 169.254.169.254 (IMDS's real address): a test reaches the managed-identity chain without pointing it at loopback" >&2
    exit 1
  fi
  say "169.254.169.254 guard: no packet was aimed at it"
fi

# A bounded fuzzing campaign of every target in fuzz/ (stable toolchain; it
# installs cargo-fuzz when missing and fails on any crash): docs/FUZZING.md.
say "fuzzing (scripts/fuzz.sh)"
./scripts/fuzz.sh
