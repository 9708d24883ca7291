#!/usr/bin/env bash
# Side by side: the benchmarks of docs/BENCHMARKS.md on this tree and on
# another revision (a refactoring's base), interleaved in one run so both
# see the same machine, and printed as ratios (bench/compare.py).
#
#   bench/compare.sh REV [ROUNDS]      # ROUNDS (default 3) of each side
#
# Per round and side: the cache benchmark (divan), the emulator's token
# endpoint (EMU_SECONDS per mode, default 5), and the ISV run over TENANTS
# generated tenants (default 1000). The order of the sides alternates from
# round to round. REV is checked out in a git worktree beside this one
# (BASE_TREE to choose where), built with its own target directory.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bench/compare.sh REV [ROUNDS]}
rounds=${2:-3}
now=$PWD
base=${BASE_TREE:-$now/../apptoken-base-$(git rev-parse --short "$rev")}
if [ ! -d "$base" ]; then
  git worktree add --detach "$base" "$rev" >/dev/null
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
build() {
  (cd "$1" &&
    cargo bench -p apptoken --bench cache --no-run --quiet &&
    cargo bench -p apptoken-emulator --bench token_endpoint --no-run --quiet &&
    cargo build --release --quiet -p apptoken-cli --bin apptoken) >/dev/null 2>&1 ||
    { echo "building $1 failed" >&2; exit 1; }
}
echo "building $rev in $base and this tree ($(git rev-parse --short HEAD))" >&2
build "$base"
build "$now"
one() { # SIDE DIR ROUND
  (cd "$2" && cargo bench -p apptoken --bench cache --quiet) >"$out/cache-$1-$3.txt" 2>&1
  (cd "$2" && BENCH_SECONDS=${EMU_SECONDS:-5} cargo bench -p apptoken-emulator --bench token_endpoint --quiet) >"$out/emu-$1-$3.txt" 2>&1
  (cd "$2" && bash bench/isv/run.sh "${TENANTS:-1000}") >"$out/isv-$1-$3.txt" 2>&1
}
for i in $(seq 1 "$rounds"); do
  echo "round $i of $rounds" >&2
  if [ $((i % 2)) -eq 1 ]; then
    one base "$base" "$i"; one now "$now" "$i"
  else
    one now "$now" "$i"; one base "$base" "$i"
  fi
done
python3 bench/compare.py "$out" "$(git -C "$base" rev-parse --short HEAD)" "$(git rev-parse --short HEAD)"
