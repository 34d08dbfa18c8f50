#!/usr/bin/env bash
# Regenerates everything derived from Protos/:
# - the swift-protobuf message code (protoc-gen-swift, built from the
#   swift-protobuf dependency, so it matches the runtime it compiles against);
# - Haven's own code (protoc-gen-haven, Sources/protoc-gen-haven): the method
#   catalog, the field limits, the server's handler protocols, HavenClient's
#   typed sub-clients, and the method and limit tables of docs/PROTOCOL.md;
# - the protobuf-c code of the benchmarks' baseline.
#
#   scripts/generate-protos.sh          # regenerate
#   scripts/generate-protos.sh --check  # CI: regenerate, fail if anything changed
#
# Needs Debian's `protobuf-compiler` and `protobuf-c-compiler`
# (apt-get install -y protobuf-compiler protobuf-c-compiler).
set -euo pipefail
cd "$(dirname "$0")/.."

check=false
[ "${1:-}" = "--check" ] && check=true

command -v protoc >/dev/null || { echo "protoc not found: apt-get install -y protobuf-compiler" >&2; exit 1; }
command -v protoc-c >/dev/null || { echo "protoc-c not found: apt-get install -y protobuf-c-compiler" >&2; exit 1; }

# Debug builds in the package's own build folder: the plugins' output does not
# depend on the configuration, and the test build reuses what they compile.
swift build --product protoc-gen-swift >&2
swift build --product protoc-gen-haven >&2
bin="$(swift build --show-bin-path)"

protos=$(cd Protos && find . -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort)

out=Sources/HavenProtocol/Generated
rm -rf "$out" Sources/HavenServer/Generated Sources/HavenClient/Generated
mkdir -p "$out"
protoc \
    --proto_path=Protos \
    --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
    --swift_opt=Visibility=Public \
    --swift_opt=FileNaming=PathToUnderscores \
    --swift_out="$out" \
    --plugin=protoc-gen-haven="$bin/protoc-gen-haven" \
    --haven_opt=docs=docs/PROTOCOL.md \
    --haven_out=. \
    $protos

# protobuf-c code for the benchmarks' baseline.
c=Benchmarks/Sources/CHavenProtobufC
rm -rf "$c/include/haven" "$c/generated"
mkdir -p "$c/include" "$c/generated"
protoc-c --proto_path=Protos --c_out="$c/generated" $protos
(cd "$c/generated" && find . -name '*.pb-c.h' | while read -r header; do
    mkdir -p "../include/$(dirname "$header")"
    mv "$header" "../include/$header"
done)

echo "generated $(ls "$out" | wc -l) files in $out, and Haven's code and tables"

if $check; then
    generated=(Sources/HavenProtocol/Generated Sources/HavenServer/Generated Sources/HavenClient/Generated
        docs/PROTOCOL.md "$c")
    if [ -n "$(git status --porcelain -- "${generated[@]}")" ]; then
        git status --short -- "${generated[@]}" >&2
        git --no-pager diff --stat -- "${generated[@]}" >&2
        echo "error: the committed generated code is not what Protos/ generates; run scripts/generate-protos.sh and commit the result" >&2
        exit 1
    fi
    echo "generated code is current"
fi
