#!/usr/bin/env bash
# Side by side in one run, on one emulator: apptoken and MSAL Python.
# - the cost of a cache hit (acquire_token / acquire_token_for_client)
# - token requests made by 1,000 concurrent cold callers
# Prints a Markdown table for docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
HITS_RUST=${HITS_RUST:-1000000}
HITS_PY=${HITS_PY:-20000}
CALLERS=${CALLERS:-1000}

if ! [ -x .venv/bin/python ] || ! .venv/bin/python -c "import msal" 2>/dev/null; then
  python3 -m venv .venv && .venv/bin/pip install --quiet -r tests/peers/requirements.txt
fi
cargo build --release --quiet -p apptoken-cli --bin apptoken
cargo build --release --quiet -p apptoken --example peer_bench
state=$(mktemp -d)
trap 'kill $emu 2>/dev/null || true; rm -rf "$state"' EXIT
target/release/apptoken emulator --tls --listen 127.0.0.1:0 --state-dir "$state" >/dev/null &
emu=$!
for _ in $(seq 1 200); do [ -s "$state/emulator.json" ] && break; sleep 0.05; done
ours=$(target/release/examples/peer_bench "$state/emulator.json" "$HITS_RUST" "$CALLERS")
theirs=$(REQUESTS_CA_BUNDLE="$state/ca.pem" .venv/bin/python bench/peers/msal_python.py "$state/emulator.json" "$HITS_PY" "$CALLERS")
python3 - "$ours" "$theirs" <<'PY'
import json, sys
a, m = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("| measure | %s | %s | ratio |" % (a["client"], m["client"]))
print("|---|---|---|---|")
print("| cache hit | %.0f ns | %.0f ns | %.0fx cheaper |" % (a["hit_ns"], m["hit_ns"], m["hit_ns"] / a["hit_ns"]))
print("| token requests for %d concurrent cold callers | %d | %d | %s |" % (
    a["cold_callers"], a["cold_requests"], m["cold_requests"],
    "%dx fewer" % (m["cold_requests"] / max(a["cold_requests"], 1))))
if a["errors"] or m["errors"]:
    print("errors: apptoken %d, msal %d" % (a["errors"], m["errors"]))
PY
