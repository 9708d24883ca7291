#!/usr/bin/env bash
# Runs the cache benchmark N times (default 3) and prints each run's table
# (bench/cache/report.py). The machine is shared: compare runs, and read the
# 2-thread figures against that run's calibration.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo bench -p apptoken --bench cache --no-run --quiet
for i in $(seq 1 "$runs"); do
  cargo bench -p apptoken --bench cache --quiet >"$out/run$i.txt" 2>&1
done
python3 bench/cache/report.py "$out"/run*.txt
