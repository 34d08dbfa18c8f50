#!/usr/bin/env bash
# Formats the Swift sources with the toolchain's `swift format` and the
# checked-in .swift-format (swift-nio's settings: 4 spaces, 120 columns).
#
#   scripts/format.sh          rewrite files in place
#   scripts/format.sh --lint   report differences and exit 1 if any (CI)
#
# Generated protobuf code is left as protoc-gen-swift writes it.
set -euo pipefail
cd "$(dirname "$0")/.."

files=()
while IFS= read -r -d '' file; do files+=("$file"); done < <(
    git ls-files -z --cached --others --exclude-standard -- '*.swift' ':!:Sources/HavenProtocol/Generated/*' ':!:Sources/HavenClient/Generated/*' ':!:Sources/HavenServer/Generated/*'
)

if [ "${1:-}" = "--lint" ]; then
    swift format lint --strict --parallel "${files[@]}"
    echo "swift format: ${#files[@]} files clean"
else
    swift format format --in-place --parallel "${files[@]}"
fi
