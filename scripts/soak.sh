#!/usr/bin/env bash
# Soak: a development havend under haven-load's mixed load (reads, appends,
# registrations) with change-feed followers that reconnect every few seconds
# and clients that disconnect in the middle of a call, for SECONDS (default
# 120, what .ci/run runs; an hour by hand: scripts/soak.sh 3600).
#
# Fails on any failed call, feed or churn failure, server resident memory
# growing more than MAX_GROWTH_MIB (default 64) from warm to the end, server
# sockets not back to idle (descriptors: idle plus the store's read
# connections, at most 10), or havend not exiting 0 on SIGTERM. The report
# is kept in .ci/artifacts/soak.json (SOAK_REPORT chooses another file).
# HAVEND, HAVEN_ADMIN and HAVEN_LOAD name prebuilt binaries to use instead of
# building them.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-120}
max_growth_mib=${MAX_GROWTH_MIB:-64}

work=$(mktemp -d)
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
build() {
    swift build "$@" >>"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
}
# Prebuilt binaries may be given (a release havend, or copies a rebuild will not replace mid-soak).
if [ -z "${HAVEND:-}" ]; then build --product havend; HAVEND=.build/debug/havend; fi
if [ -z "${HAVEN_ADMIN:-}" ]; then build --product haven-admin; HAVEN_ADMIN=.build/debug/haven-admin; fi
if [ -z "${HAVEN_LOAD:-}" ]; then
    build -c release --package-path Benchmarks --product haven-load
    HAVEN_LOAD=$(swift build -c release --package-path Benchmarks --show-bin-path 2>/dev/null)/haven-load
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$HAVEND" --data-dir "$work/data" --create-development \
    --set listen_port="$port" --set ops_listen_port=0 >"$work/havend.out" 2>"$work/havend.log" &
pid=$!
for _ in $(seq 1 100); do
    grep -q "listening on" "$work/havend.out" 2>/dev/null && break
    sleep 0.1
done
grep -q "listening on" "$work/havend.out" || { cat "$work/havend.out" "$work/havend.log"; exit 1; }

# A director of KOL, MUM and MNL with fictional records, enrolled into $work/director.
"$HAVEN_ADMIN" demo --credentials "$work/data/credentials/admin" \
    --server "127.0.0.1:$port" --out "$work/director" >/dev/null

report=${SOAK_REPORT:-.ci/artifacts/soak.json}
mkdir -p "$(dirname "$report")"
status=0
"$HAVEN_LOAD" --target "127.0.0.1:$port" --server-name localhost --credentials "$work/director" --office KOL \
    --connections 4 --concurrency 32 --warmup 10 --duration "$seconds" \
    --followers 4 --churn 4 --watch-pid "$pid" --max-resident-growth-mib "$max_growth_mib" \
    --check --json >"$report" 2>"$work/load.log" || status=$?
# haven-load's progress lines end in \r; its verdict and any error are its last line.
tr '\r' '\n' <"$work/load.log" | grep -v '^\(warm-up\|measuring\):' | grep -v '^ *$' || true

# What the server holds open at the end, for a failed descriptor check.
ls -l "/proc/$pid/fd" >"${report%.json}-descriptors.txt" 2>&1 || true
kill -TERM "$pid"
exit_status=0
wait "$pid" || exit_status=$?
pid=""
python3 - "$report" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["soak"]; server = s["server"]; mib = lambda b: b / 1048576
print(f"soak: {r['seconds']:.0f} s, {r['calls']} calls ({r['callsPerSecond']:.0f}/s), errors {r['errors'] or 'none'}; "
      f"{s['followerCycles']} follower connections ({s['feedItems']} items), {s['churnCycles']} clients dropped mid-call, "
      f"side errors {s['sideErrors'] or 'none'}")
rb = server["residentBytes"]; d = server["descriptors"]; so = server["sockets"]
print(f"soak: havend resident MiB idle {mib(rb['idle']):.1f}, warm {mib(rb['warm']):.1f}, peak {mib(rb['peak']):.1f}, "
      f"final {mib(rb['final']):.1f} (growth {mib(rb['final'] - rb['warm']):+.1f}); "
      f"descriptors idle {d['idle']}, peak {d['peak']}, final {d['final']}; sockets idle {so['idle']}, peak {so['peak']}, final {so['final']}")
PY
if [ "$exit_status" -ne 0 ]; then
    echo "soak: havend exited $exit_status on SIGTERM"
    tail -20 "$work/havend.log"
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "soak: FAILED (see above and $report)"
    exit 1
fi
echo "soak: passed"
