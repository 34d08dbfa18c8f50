#!/usr/bin/env bash
# Checks, without building anything, that the committed generated code is
# current: the stamp records a hash of every file under Protos/, of the
# generators, and of the generated output. Editing a .proto without running
# scripts/generate-protos.sh, or hand-editing generated code, fails here.
#
#   scripts/check-generated.sh          # CI: exit 1 when stale
#   scripts/check-generated.sh --write  # used by generate-protos.sh
set -euo pipefail
cd "$(dirname "$0")/.."

stamp=Sources/HavenProtocol/Generated/PROTOS.sha256

compute() {
    (
        find Protos -type f -name '*.proto'
        echo scripts/generate-protos.sh
        echo scripts/generate-schema-catalog.py
        find Sources/HavenProtocol/Generated Sources/HavenClient/Generated -type f -name '*.swift'
        find Benchmarks/Sources/CHavenProtobufC/generated Benchmarks/Sources/CHavenProtobufC/include/haven \
            -type f -name '*.pb-c.[ch]' 2>/dev/null
    ) | LC_ALL=C sort | xargs sha256sum
}

if [ "${1:-}" = "--write" ]; then
    compute > "$stamp"
    exit 0
fi

if [ ! -f "$stamp" ]; then
    echo "error: $stamp is missing; run scripts/generate-protos.sh" >&2
    exit 1
fi
if ! diff -u "$stamp" <(compute) >&2; then
    echo "error: generated code is stale (lines above differ); run scripts/generate-protos.sh and commit the result" >&2
    exit 1
fi
echo "generated code is current ($(grep -c '\.proto$' "$stamp") proto files)"
