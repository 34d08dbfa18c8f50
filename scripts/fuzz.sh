#!/usr/bin/env bash
# Fuzzes one target of haven-fuzz with libFuzzer and AddressSanitizer.
#
#   scripts/fuzz.sh frames|envelopes|messages|connection|wire [seconds=60] [jobs=1]
#
# Builds haven-fuzz (release, -sanitize=fuzzer,address) into .build-fuzz (the first
# build takes several minutes), then runs it from the checked-in seeds
# (Fuzz/corpus/<target>) with Fuzz/haven.dict. New inputs go to
# .build-fuzz/corpus/<target>; a crash, leak or broken invariant is written to
# Fuzz/regressions/<target>/ — commit it: FuzzCorpusTests replays it in every
# `swift test` from then on (fix the bug first). Prints libFuzzer's final
# stats (number of executions).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh frames|envelopes|messages|connection|wire [seconds] [jobs]}
seconds=${2:-60}
jobs=${3:-1}
case "$target" in frames | envelopes | messages | connection | wire) ;; *)
    echo "unknown target $target" >&2
    exit 64
    ;;
esac
swift build -c release --product haven-fuzz --scratch-path .build-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DHAVEN_FUZZ -Xswiftc -parse-as-library
work=.build-fuzz/corpus/$target
mkdir -p "$work" "Fuzz/regressions/$target"
parallel=()
# Several jobs: libFuzzer writes each one's output to fuzz-<n>.log here (ignored by git).
if [ "$jobs" -gt 1 ]; then parallel=(-jobs="$jobs" -workers="$jobs"); fi
leaks=()
# The connection target runs the store, whose values (Data inside enums such as
# GRDB's DatabaseValue) Swift keeps behind pointers with spare bits set, which
# LeakSanitizer cannot follow: it reports them as leaked. Its memory is
# measured instead by HostilePeerTests and the soak (scripts/soak.sh).
if [ "$target" = connection ]; then
    leaks=(-detect_leaks=0)
    export ASAN_OPTIONS=detect_leaks=0
fi
HAVEN_FUZZ_TARGET=$target .build-fuzz/release/haven-fuzz "${leaks[@]}" \
    -dict=Fuzz/haven.dict -max_total_time="$seconds" "${parallel[@]}" \
    -artifact_prefix="Fuzz/regressions/$target/" -print_final_stats=1 \
    "$work" "Fuzz/corpus/$target"
