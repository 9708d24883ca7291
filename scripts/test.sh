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

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "cargo check of the library without its optional features"
cargo check -p apptoken --no-default-features --lib --locked

say "cargo doc of the libraries (broken links and bad doc markup are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps -p apptoken -p apptoken-daemon -p apptoken-emulator -p apptoken-redis

say "cargo test"
cargo test --workspace --locked "$@"

# A bounded fuzzing campaign of every target in fuzz/ (stable toolchain; it
# installs cargo-fuzz when missing and fails on any crash): docs/FUZZING.md.
say "fuzzing (scripts/fuzz.sh)"
./scripts/fuzz.sh
