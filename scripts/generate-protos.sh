#!/usr/bin/env bash
# Regenerates the Swift code of the wire schema from Protos/, HavenClient's
# typed sub-clients, the method reference in docs/PROTOCOL.md, and the stamp that CI checks
# (scripts/check-generated.sh).
#
#   scripts/generate-protos.sh
#
# Needs Debian's `protobuf-compiler` and `protobuf-c-compiler`
# (apt-get install -y protobuf-compiler protobuf-c-compiler)
# and builds `protoc-gen-swift` from the swift-protobuf dependency, so the
# generated code always matches the runtime library it is compiled against.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v protoc >/dev/null || { echo "protoc not found: apt-get install -y protobuf-compiler" >&2; exit 1; }

scratch=.build-protoc
swift build -c release --product protoc-gen-swift --scratch-path "$scratch" >&2
plugin="$(swift build -c release --product protoc-gen-swift --scratch-path "$scratch" --show-bin-path)/protoc-gen-swift"

out=Sources/HavenProtocol/Generated
rm -rf "$out"
mkdir -p "$out"
protoc \
    --proto_path=Protos \
    --plugin=protoc-gen-swift="$plugin" \
    --swift_opt=Visibility=Public \
    --swift_opt=FileNaming=PathToUnderscores \
    --swift_out="$out" \
    $(cd Protos && find . -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort)
mkdir -p Sources/HavenClient/Generated
python3 scripts/generate-schema-catalog.py Protos "$out/Schema+Catalog.swift" docs/PROTOCOL.md \
    Sources/HavenClient/Generated/HavenClient+Services.swift

# protobuf-c code for the benchmarks' baseline (Debian's protobuf-c-compiler).
if command -v protoc-c >/dev/null; then
    c=Benchmarks/Sources/CHavenProtobufC
    rm -rf "$c/include/haven" "$c/generated"
    mkdir -p "$c/include" "$c/generated"
    protoc-c --proto_path=Protos --c_out="$c/generated" \
        $(cd Protos && find . -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort)
    (cd "$c/generated" && find . -name '*.pb-c.h' | while read -r header; do
        mkdir -p "../include/$(dirname "$header")"
        mv "$header" "../include/$header"
    done)
else
    echo "protoc-c not found (apt-get install -y protobuf-c-compiler): benchmark C code left as it is" >&2
fi

scripts/check-generated.sh --write
echo "generated $(ls "$out" | wc -l) files in $out"
