#!/usr/bin/env bash
# Bounces read per second (issue 12): `missive bounces` over a Maildir of N generated bounces,
# pinned to one core, release build, beside two references measured in the same run: `cat` of
# the same files (reading them, nothing more) and mail-parser alone parsing them
# (examples/bench_bounces.rs). Not a test; it prints figures. Target: >= 5,000 a second.
#
#   bash bench/bounces.sh            # N=20000, ROUNDS=3 (the best of each is kept)
#   N=2000 ROUNDS=1 bash bench/bounces.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
N=${N:-20000}
ROUNDS=${ROUNDS:-3}
# Any 32 bytes: the corpus's VERP tags are made and read with it.
export MISSIVE_UNSUBSCRIBE_SECRET=${MISSIVE_UNSUBSCRIBE_SECRET:-bench-bounces-0123456789abcdef0123456789abcdef}
PIN=(taskset -c 0)
command -v taskset >/dev/null || PIN=()

(cd "$ROOT" && cargo build --release --quiet --bin missive --example bench_bounces)
MISSIVE="$TARGET/release/missive"
HELPER="$TARGET/release/examples/bench_bounces"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$HELPER" generate "$WORK" "$N"
MAILDIR="$WORK/Maildir"
BYTES=$(du -sb "$MAILDIR" | cut -f1)

now() { date +%s.%N; }
# best SECONDS of ROUNDS runs of a command (a fresh bounce log and lists before each when asked)
best() {
  local fresh=$1; shift
  local best=""
  for _ in $(seq "$ROUNDS"); do
    if [ "$fresh" = fresh ]; then rm -rf "$WORK/suppression" "$WORK"/*.bounces.jsonl; fi
    sync
    local t0 t1
    t0=$(now); "$@" >/dev/null; t1=$(now)
    local s; s=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$s < $best" | bc -l)" = 1 ]; then best=$s; fi
  done
  echo "$best"
}
row() { printf '| %-58s | %8.3f | %9.0f |\n' "$1" "$2" "$(echo "$N / $2" | bc -l)"; }

# Warm the page cache, so that every row reads from memory alike.
cat "$MAILDIR"/new/* >/dev/null 2>&1 || find "$MAILDIR/new" -type f -exec cat {} + >/dev/null

CAT=$(best keep "${PIN[@]}" find "$MAILDIR/new" -type f -exec cat {} +)
PARSE=$(best keep "${PIN[@]}" "$HELPER" parse "$MAILDIR")
FIRST=$(best fresh "${PIN[@]}" "$MISSIVE" bounces "$WORK/campaign.toml" "$MAILDIR")
AGAIN=$(best keep "${PIN[@]}" "$MISSIVE" bounces "$WORK/campaign.toml" "$MAILDIR")

echo "bounces read per second, one core ($(nproc) on the machine, shared), N=$N messages, $((BYTES / 1024)) KiB, best of $ROUNDS"
echo
echo "| run | seconds | messages/s |"
echo "|---|---:|---:|"
row "cat of the same files (reference: reading only)" "$CAT"
row "mail-parser alone, parsing each (reference)" "$PARSE"
row "missive bounces, first read (decide, lists, log synced)" "$FIRST"
row "missive bounces, second read (every message already read)" "$AGAIN"
echo
"$MISSIVE" bounces "$WORK/campaign.toml" "$MAILDIR" | head -1
echo "lines in the bounced list: $(wc -l <"$WORK/suppression/bounced.txt"), in the complained list: $(wc -l <"$WORK/suppression/complained.txt")"
