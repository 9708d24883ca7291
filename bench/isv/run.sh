#!/usr/bin/env bash
# An ISV's daemon over many customer tenants (issue #17), on a generated
# emulator: `apptoken run --once` over TENANTS tenants (3 users each), one
# not consented. Prints wall time, token and discovery requests, peak memory
# of the daemon process and the run's exit code (7: partial), as a Markdown
# row for docs/BENCHMARKS.md; then `apptoken tenants check` over the same
# list. Usage: bench/isv/run.sh [TENANTS] (default 1000).
set -euo pipefail
cd "$(dirname "$0")/../.."
TENANTS=${1:-1000}
BAD=$(( TENANTS / 2 + 1 ))
cargo build --release --quiet -p apptoken-cli --bin apptoken
bin=target/release/apptoken
export KEEP=${KEEP:-}
work=$(mktemp -d)
trap 'kill $emu 2>/dev/null || true; [ -n "$KEEP" ] && echo "kept $work" >&2 || rm -rf "$work"' EXIT
$bin emulator generate --tenants "$TENANTS" --without-consent "$BAD" --out "$work/emulator" >/dev/null
$bin emulator --config "$work/emulator/emulator.toml" --listen 127.0.0.1:0 --state-dir "$work/state" >"$work/emulator.log" 2>&1 &
emu=$!
for _ in $(seq 1 400); do [ -s "$work/state/emulator.json" ] && break; sleep 0.05; done
base=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["authority_host"])' "$work/state/emulator.json")
home=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tenant_id"])' "$work/state/emulator.json")
client=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_id"])' "$work/state/emulator.json")
measure() { # LABEL OUTPUT_PATH
  rm -rf "$work/out"; mkdir -p "$work/out"
  cat >"$work/daemon.toml" <<TOML
[identity]
authority_host = "$base"
tenant_id = "$home"
client_id = "$client"
client_secret_file = "emulator/client-secret"

[apis.sample]
base_url = "$base/v1.0"
scopes = ["api://apptoken-sample-api/.default"]

[[jobs]]
name = "users"
api = "sample"
path = "users"
every = "15m"
tenants_file = "emulator/tenants.txt"
tenant_concurrency = 8
output = { type = "file", path = "$2" }
TOML
  curl -s -X POST "$base/_emulator/stats/reset" >/dev/null
  set +e
  /usr/bin/time -f '%e %M' -o "$work/time" $bin run --once --config "$work/daemon.toml" --log-level warn 2>"$work/run.log"
  rc=$?
  set -e
  read -r wall rss < <(tail -1 "$work/time")
  curl -s "$base/_emulator/stats" >"$work/stats.json"
  python3 - "$work/stats.json" "$wall" "$rss" "$rc" "$TENANTS" "$1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); wall, rss, rc, n, label = sys.argv[2:7]
tok = sum(c["count"] for c in s["token_requests"])
refused = sum(c["count"] for c in s["token_requests"] if c["outcome"] != "success")
print("| `apptoken run --once`, %s tenants x 3 users, 1 not consented, %s | %.2f s | %d (%d refused) | %d | %.0f MiB | %s |" % (
    n, label, float(wall), tok, refused, s.get("discovery_requests", 0), int(rss) / 1024, rc))
PY
}
echo "| run | wall | token requests | discovery requests | peak RSS | exit |"
echo "|---|---|---|---|---|---|"
measure "one file per tenant (\`{tenant}\`)" "out/users-{tenant}.jsonl"
measure "one shared file" "out/users.jsonl"
set +e
/usr/bin/time -f '%e' -o "$work/time2" $bin tenants check --config "$work/daemon.toml" --concurrency 8 >"$work/check.txt" 2>&1
rc2=$?
set -e
echo "| \`apptoken tenants check\`, the same $TENANTS tenants | $(tail -1 "$work/time2") s | $TENANTS ($(grep -c REFUSED "$work/check.txt") refused) | - | - | $rc2 |"
