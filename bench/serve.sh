#!/usr/bin/env bash
# The one-click unsubscribe endpoint under load (issue 12). Not a test: it prints figures
# measured in this run. `missive serve` (release build) answers the shipped campaign on
# 127.0.0.1; wrk drives it over keep-alive connections with
#   - the reference: GET of the confirmation page (a page rendered, no I/O), and
#   - one-click POSTs, each for a person of its own (bench/serve.lua), so every answer is an
#     append made durable (fsync) before the 200: what group commit is for.
# Each run gets a fresh server and an empty unsubscribed file on the disk (not tmpfs: an fsync
# must cost what it costs). After each POST run the file's lines are counted (each person once)
# and the server's "batch synced" lines (MISSIVE_LOG=missive::serve::commit=debug) give the
# number of fsyncs.
#
#   bash bench/serve.sh                         # 10 s a run, at 16, 64 and 256 connections
#   DURATION=5s CONNECTIONS="64" bash bench/serve.sh
#
# Targets: >= 2,000 POSTs a second, p99 < 50 ms.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-"16 64 256"}
THREADS=${THREADS:-2}
# Distinct people: more than the fastest run can post, so that no POST repeats one.
PEOPLE=${PEOPLE:-400000}
export MISSIVE_UNSUBSCRIBE_SECRET=${MISSIVE_UNSUBSCRIBE_SECRET:-bench-only-throwaway-key-0123456789abcdef}

say() { printf '%s\n' "$*" >&2; }

if ! command -v wrk >/dev/null; then
    say "installing wrk (Debian package)"
    if [[ -z "${APT_UPDATED:-}" ]]; then apt-get update -qq; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi

say "building missive (release)"
(cd "$ROOT" && cargo build --release --quiet --bin missive)
MISSIVE="$TARGET/release/missive"

mkdir -p "$ROOT/bench/.cache"
WORK=$(mktemp -d "$ROOT/bench/.cache/serve.XXXXXX")
SERVER=
cleanup() {
    if [[ -n "$SERVER" ]]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
cp "$ROOT/campaign.toml" "$WORK/campaign.toml"
CAMPAIGN_ID=$(sed -n 's/^id = "\(.*\)"/\1/p' "$WORK/campaign.toml")
URL_PATH=$(sed -n 's|^url = "https://[^/]*\(/[^"?]*\)"|\1|p' "$WORK/campaign.toml")

# The links as missive writes them (see src/unsubscribe/secret.rs): the first 128 bits of an
# HMAC-SHA256, under the secret, of a label, the campaign id and the address. The first one is
# checked by `missive unsubscribe-token verify` below, so a change there cannot go unnoticed.
say "making $PEOPLE links"
python3 - "$WORK/links.txt" "$CAMPAIGN_ID" "$URL_PATH" "$PEOPLE" <<'PY'
import hmac, hashlib, os, sys, urllib.parse
out, campaign, path, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
key = os.environ["MISSIVE_UNSUBSCRIBE_SECRET"].encode()
with open(out, "w") as f:
    for i in range(n):
        address = f"person{i}@example.com"
        mac = hmac.new(key, b"missive-unsubscribe-v1\0" + campaign.encode() + b"\0" + address.encode(), hashlib.sha256)
        query = urllib.parse.urlencode({"c": campaign, "e": address, "t": mac.hexdigest()[:32]})
        f.write(f"{path}?{query}\n")
PY
"$MISSIVE" unsubscribe-token verify "https://bench.invalid$(head -1 "$WORK/links.txt")" >/dev/null \
    || { say "the bench's links do not verify: bench/serve.sh no longer makes them as missive does"; exit 1; }

start_server() {
    rm -rf "$WORK/suppression"
    : > "$WORK/serve.out"
    MISSIVE_LOG=missive::serve::commit=debug "$MISSIVE" serve "$WORK/campaign.toml" \
        --listen 127.0.0.1:0 >"$WORK/serve.out" 2>"$WORK/serve.err" &
    SERVER=$!
    for _ in $(seq 100); do
        ADDR=$(sed -n 's|^listening on ||p' "$WORK/serve.out")
        [[ -n "$ADDR" ]] && return
        sleep 0.1
    done
    say "missive serve did not start:"; cat "$WORK/serve.err" >&2; exit 1
}
stop_server() {
    kill -TERM "$SERVER"; wait "$SERVER"; SERVER=
}
# `run MODE CONNECTIONS`: prints wrk's RESULT line.
run() {
    start_server
    LINKS="$WORK/links.txt" THREADS=$THREADS MODE=$1 \
        wrk -t"$THREADS" -c"$2" -d"$DURATION" --timeout 5s -s "$ROOT/bench/serve.lua" "$ADDR" \
        >"$WORK/wrk.out" 2>&1 || { cat "$WORK/wrk.out" >&2; exit 1; }
    stop_server
    grep '^RESULT' "$WORK/wrk.out"
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

say "wrk: $THREADS threads, $DURATION a run, on $(nproc) cores shared with missive; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '\n| connections | GET page: req/s | GET p99 | one-click POST: req/s | POST p99 | POSTs answered | lines written | fsyncs | POSTs an fsync |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
for c in $CONNECTIONS; do
    get=$(run get "$c")
    post=$(run post "$c")
    lines=$(wc -l <"$WORK/suppression/unsubscribed.txt")
    syncs=$(grep -c 'batch synced' "$WORK/serve.err" || true)
    answered=$(( $(field requests "$post") - $(field non2xx "$post") ))
    if [[ "$(field non2xx "$post")" != 0 || "$(field errors "$post")" != 0 ]]; then
        say "POST run at $c connections: $post"
    fi
    printf '| %s | %s | %s ms | %s | %s ms | %s | %s | %s | %s |\n' "$c" \
        "$(field rps "$get")" "$(field p99_ms "$get")" \
        "$(field rps "$post")" "$(field p99_ms "$post")" \
        "$answered" "$lines" "$syncs" "$(( syncs > 0 ? answered / syncs : 0 ))"
done
printf '\nTargets: >= 2,000 POSTs a second, p99 < 50 ms. Every POST is a person of its own: lines written\nshould equal POSTs answered (wrk may cut a few in flight at the end of a run).\n'
