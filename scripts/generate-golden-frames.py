#!/usr/bin/env python3
"""Builds the golden frame fixtures with the reference protobuf compiler.

For each Tests/HavenProtocolTests/Fixtures/frames/NAME.textproto:
  # envelope: haven.v1.ClientEnvelope        the frame's envelope type
  # payload: haven.v1.GetOfficeRequest       optional: an inner message
  # payload-text: code: "KOL"                its text format
  call_id: 1 start { ... payload: @PAYLOAD@ }
it writes
  NAME.hex          the whole frame (flags, big-endian length, payload), as hex
  NAME.txt          `protoc --decode` of the envelope: the expected value
  NAME.payload.txt  `protoc --decode` of the inner message, when there is one

The fixtures come from Debian's protoc, not from Haven's code, so the tests
that decode them check Haven against an independent implementation.
Needs protoc (apt-get install -y protobuf-compiler).
"""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FRAMES = ROOT / "Tests/HavenProtocolTests/Fixtures/frames"
PROTOS = ROOT / "Protos"


def protoc(mode, type_name, data):
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    return subprocess.run(
        ["protoc", f"--proto_path={PROTOS}", f"--{mode}={type_name}", *files],
        input=data, capture_output=True, check=True,
    ).stdout


def escape(data):
    return '"' + "".join(f"\\{b:03o}" for b in data) + '"'


def build(source):
    headers, body = {}, []
    for line in source.read_text().splitlines():
        if line.startswith("# ") and ":" in line:
            key, value = line[2:].split(":", 1)
            headers[key.strip()] = value.strip()
        else:
            body.append(line)
    text = "\n".join(body)
    stem = source.with_suffix("")
    if "payload" in headers:
        inner = protoc("encode", headers["payload"], headers["payload-text"].encode())
        text = text.replace("@PAYLOAD@", escape(inner))
        stem.with_suffix(".payload.txt").write_bytes(protoc("decode", headers["payload"], inner))
    payload = protoc("encode", headers["envelope"], text.encode())
    frame = bytes([0]) + len(payload).to_bytes(4, "big") + payload
    stem.with_suffix(".hex").write_text(frame.hex() + "\n")
    stem.with_suffix(".txt").write_bytes(protoc("decode", headers["envelope"], payload))


def main():
    sources = sorted(FRAMES.glob("*.textproto"))
    if not sources:
        sys.exit(f"no fixtures in {FRAMES}")
    for source in sources:
        build(source)
    print(f"wrote {len(sources)} golden frames")


if __name__ == "__main__":
    main()
