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

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "cargo test"
cargo test --workspace --locked "$@"
