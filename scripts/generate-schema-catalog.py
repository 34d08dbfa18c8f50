#!/usr/bin/env python3
"""Writes HavenProtocol's method catalog from the `service` blocks in Protos/.

The .proto files are the single source of truth for method names and types:
the server's router and the client's typed calls both use the descriptors
this writes, so no method name is ever typed twice. Only the subset of proto
syntax that Haven's schema uses for services is accepted (unary and
server-streaming rpcs, comments on the lines before each rpc); anything else
is an error rather than a silent omission.
"""
import pathlib
import re
import sys

SERVICE = re.compile(r"^service\s+(\w+)\s*\{\s*$")
RPC = re.compile(r"^rpc\s+(\w+)\s*\(\s*(stream\s+)?([\w.]+)\s*\)\s*returns\s*\(\s*(stream\s+)?([\w.]+)\s*\)\s*;\s*$")
PACKAGE = re.compile(r"^package\s+([\w.]+)\s*;\s*$")
MESSAGE = re.compile(r"^message\s+(\w+)\s*\{")
NESTED = re.compile(r"^\s+(message|enum)\s+\w+\s*\{")


def swift_type(package, name):
    if "." in name:
        raise SystemExit(f"qualified type names are not supported in rpc signatures: {name}")
    prefix = "".join(part[:1].upper() + part[1:] + "_" for part in package.split("."))
    return prefix + name


def lower_camel(name):
    return name[:1].lower() + name[1:]


def parse(path):
    package = None
    services = []
    messages = []
    current = None
    comments = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        if NESTED.match(raw):
            raise SystemExit(f"{path}:{number}: nested types are not used in the Haven schema; declare it at top level")
        if m := MESSAGE.match(raw):
            messages.append(m.group(1))
        line = raw.strip()
        if m := PACKAGE.match(line):
            package = m.group(1)
        if line.startswith("//"):
            comments.append(line[2:].strip())
            continue
        if m := SERVICE.match(line):
            current = {"name": m.group(1), "doc": comments, "methods": []}
            services.append(current)
        elif current is not None and line.startswith("rpc"):
            m = RPC.match(line)
            if not m:
                raise SystemExit(f"{path}:{number}: rpc must fit on one line as 'rpc Name(Request) returns (Response);'")
            if m.group(2):
                raise SystemExit(f"{path}:{number}: client-streaming rpcs are not part of the Haven protocol")
            current["methods"].append({
                "name": m.group(1),
                "request": m.group(3),
                "response": m.group(5),
                "streaming": bool(m.group(4)),
                "doc": comments,
            })
        elif current is not None and line == "}":
            current = None
        comments = []
    return package, services, messages


FIELD = re.compile(r"^(repeated\s+)?([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*(\[.*\])?\s*;\s*$")
ONEOF = re.compile(r"^oneof\s+\w+\s*\{\s*$")
MARKER = re.compile(r"\[max: (?:(\d+) items?)?(?: of )?(?:(\d+) (bytes|KiB))?\]")
SCALARS = {"double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64",
           "sfixed32", "sfixed64", "bool", "string", "bytes"}
IDENTIFIER_NAMES = {"id", "code", "reference", "cursor", "page_token", "idempotency_key"}
DEFAULT_IDENTIFIER_BYTES = 64
DEFAULT_TEXT_BYTES = 200
DEFAULT_ITEMS = 100


def parse_messages(path):
    """Top-level messages and their fields (oneof members included), with the comments before each field."""
    messages = {}
    current = None
    comments = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if m := MESSAGE.match(raw):
            current = {"name": m.group(1), "fields": []}
            messages[m.group(1)] = current
            comments = []
            if raw.rstrip().endswith("}"):
                current = None
            continue
        if current is None:
            continue
        if raw.startswith("}"):
            current = None
            continue
        if line.startswith("//"):
            comments.append(line[2:].strip())
            continue
        if ONEOF.match(line) or line == "}" or line.startswith("reserved") or not line:
            comments = []
            continue
        m = FIELD.match(line)
        if not m:
            raise SystemExit(f"{path}:{number}: cannot read this field declaration")
        current["fields"].append({
            "repeated": bool(m.group(1)), "type": m.group(2), "name": m.group(3), "number": int(m.group(4)),
            "doc": " ".join(comments),
        })
        comments = []
    return messages


def field_limit(path, message, field, enums):
    """(max_bytes, max_items) of a field: its `[max: ...]` marker, or the defaults of common.proto."""
    marker = MARKER.search(field["doc"])
    items = bytes_ = None
    if marker:
        if marker.group(1):
            items = int(marker.group(1))
        if marker.group(2):
            bytes_ = int(marker.group(2)) * (1024 if marker.group(3) == "KiB" else 1)
    text = field["type"] in ("string", "bytes")
    if text and bytes_ is None:
        name = field["name"]
        identifier = name in IDENTIFIER_NAMES or name.endswith(("_id", "_ids", "_code", "_codes"))
        bytes_ = DEFAULT_IDENTIFIER_BYTES if identifier else DEFAULT_TEXT_BYTES
    if field["repeated"] and items is None:
        items = DEFAULT_ITEMS
    if not text:
        bytes_ = None
    if not field["repeated"]:
        items = None
    if marker and not marker.group(0) in field["doc"]:
        raise SystemExit(f"{path}: {message}.{field['name']}: malformed limit marker")
    return bytes_, items


def request_limits(protos):
    """Every message reachable from a request (and the Hello), with each field's limit."""
    package = None
    messages = {}
    enums = set()
    roots = ["Hello"]
    for path in sorted(pathlib.Path(protos).rglob("*.proto")):
        package, services, _ = parse(path)
        for name, message in parse_messages(path).items():
            message["path"] = path
            messages[name] = message
        enums |= set(re.findall(r"^enum\s+(\w+)", path.read_text(), re.M))
        for service in services:
            roots += [method["request"] for method in service["methods"]]
    reachable = []
    pending = list(dict.fromkeys(roots))
    while pending:
        name = pending.pop(0)
        if name in reachable:
            continue
        if name not in messages:
            raise SystemExit(f"request type {name} not found")
        reachable.append(name)
        for field in messages[name]["fields"]:
            if field["type"] not in SCALARS and field["type"] not in enums and field["type"] not in reachable:
                pending.append(field["type"])
    table = []
    for name in reachable:
        message = messages[name]
        fields = []
        for field in message["fields"]:
            max_bytes, max_items = field_limit(message["path"], name, field, enums)
            fields.append((field, max_bytes, max_items))
        table.append((f"{package}.{name}", name, fields))
    return table


def limits_swift(protos):
    lines = [
        "extension HavenFieldLimits {",
        "    /// Every field of every message a request can carry (and of `Hello`), by message",
        "    /// full name and field number, with its maximum: from the `[max: ...]` markers in",
        "    /// Protos/ and the defaults stated in common.proto.",
        "    public static let byMessage: [String: [Int: HavenFieldLimit]] = [",
    ]
    for full, _, fields in request_limits(protos):
        if not fields:
            lines.append(f"        \"{full}\": [:],")
            continue
        lines.append(f"        \"{full}\": [")
        for field, max_bytes, max_items in fields:
            args = [f"name: \"{field['name']}\""]
            if max_bytes is not None:
                args.append(f"maxBytes: {max_bytes}")
            if max_items is not None:
                args.append(f"maxItems: {max_items}")
            lines.append(f"            {field['number']}: HavenFieldLimit({', '.join(args)}),")
        lines.append("        ],")
    lines.append("    ]")
    lines.append("}")
    return lines


LIMITS_BEGIN = "<!-- BEGIN GENERATED LIMITS: scripts/generate-schema-catalog.py -->"
LIMITS_END = "<!-- END GENERATED LIMITS -->"


def limits_docs(protos):
    out = [LIMITS_BEGIN, "", "| Message | Field | Maximum |", "|---|---|---|"]
    for _, name, fields in request_limits(protos):
        for field, max_bytes, max_items in fields:
            parts = []
            if max_items is not None:
                parts.append(f"{max_items} items")
            if max_bytes is not None:
                size = f"{max_bytes // 1024} KiB" if max_bytes % 1024 == 0 else f"{max_bytes} bytes"
                parts.append(("each " if max_items is not None else "") + size)
            if parts:
                out.append(f"| `{name}` | `{field['name']}` | {', '.join(parts)} |")
    out += ["", LIMITS_END]
    return "\n".join(out)


BEGIN = "<!-- BEGIN GENERATED METHODS: scripts/generate-schema-catalog.py -->"
END = "<!-- END GENERATED METHODS -->"


def method_docs(protos):
    """The method reference of docs/PROTOCOL.md, from the same declarations."""
    out = [BEGIN, ""]
    for path in sorted(pathlib.Path(protos).rglob("*.proto")):
        package, services, _ = parse(path)
        for service in services:
            out.append(f"### `{package}.{service['name']}`")
            out.append("")
            out.append(" ".join(service["doc"]) + f" Schema: `Protos/{path.relative_to(protos)}`.")
            out.append("")
            out.append("| Method | Request → Response | What it does; errors |")
            out.append("|---|---|---|")
            for method in service["methods"]:
                stream = "stream " if method["streaming"] else ""
                out.append(
                    f"| `{package}.{service['name']}/{method['name']}` "
                    f"| `{method['request']}` → `{stream}{method['response']}` "
                    f"| {' '.join(method['doc'])} |"
                )
            out.append("")
    out.append(END)
    return "\n".join(out)


PROPERTY = {
    "OfficeService": ("offices", "Offices"),
    "CaseService": ("cases", "Cases"),
    "SurvivorService": ("survivors", "Survivors"),
    "PartnerService": ("partners", "Partners"),
    "ReferralService": ("referrals", "Referrals"),
    "AlertService": ("alerts", "Alerts"),
    "FeedService": ("feed", "Feed"),
    "ReportService": ("reports", "Reports"),
    "SessionService": ("session", "Session"),
    "AuditService": ("audit", "Audit"),
    "AccountService": ("accounts", "Accounts"),
    "EnrollmentService": ("enrollment", "Enrollment"),
    "OperationsService": ("operations", "Operations"),
}
METHOD_OVERRIDES = {"GetOfficeReport": "officeReport", "WhoAmI": "whoAmI"}


def client_method_name(service, method):
    """OpenCase in CaseService -> open; UpdateCaseStatus -> updateStatus."""
    if method in METHOD_OVERRIDES:
        return METHOD_OVERRIDES[method]
    noun = service[: -len("Service")]
    words = re.findall(r"[A-Z][a-z]*", method)
    kept = [w for w in words if w not in (noun, noun + "s")] or words
    name = "".join(kept)
    return name[:1].lower() + name[1:]


def client_code(protos):
    """Typed sub-clients for HavenClient: one struct per service, one method per rpc."""
    lines = [
        "// DO NOT EDIT.",
        "// Generated by scripts/generate-schema-catalog.py from the service declarations in Protos/.",
        "",
        "import HavenProtocol",
        "",
    ]
    for path in sorted(pathlib.Path(protos).rglob("*.proto")):
        package, services, _ = parse(path)
        for service in services:
            if service["name"] not in PROPERTY:
                raise SystemExit(f"{path}: add {service['name']} to PROPERTY in {__file__}")
            prop, struct = PROPERTY[service["name"]]
            lines.append("extension HavenClient {")
            for doc in service["doc"]:
                lines.append(f"    /// {doc}".rstrip())
            lines.append(f"    ///")
            lines.append(f"    /// The calls of `{package}.{service['name']}`.")
            lines.append(f"    public struct {struct}: Sendable {{")
            lines.append("        let client: HavenClient")
            for method in service["methods"]:
                request = swift_type(package, method["request"])
                response = swift_type(package, method["response"])
                descriptor = f"MethodCatalog.{service['name']}.{lower_camel(method['name'])}"
                name = client_method_name(service["name"], method["name"])
                lines.append("")
                for doc in method["doc"]:
                    lines.append(f"        /// {doc}".rstrip())
                lines.append("        ///")
                lines.append("        /// - Parameters:")
                lines.append(f"        ///   - request: The `{package}.{method['request']}`.")
                lines.append("        ///   - options: The call's deadline.")
                if method["streaming"]:
                    lines.append("        /// - Returns: The stream of responses.")
                    lines.append("        /// - Throws: ``HavenError`` if the call cannot start.")
                    lines.append(f"        public func {name}(")
                    lines.append(f"            _ request: {request} = {request}(), options: CallOptions = CallOptions()")
                    lines.append(f"        ) async throws -> HavenResponseStream<{response}> {{")
                    lines.append(f"            try await self.client.serverStreaming({descriptor}, request, options: options)")
                else:
                    lines.append("        /// - Returns: The response.")
                    lines.append("        /// - Throws: ``HavenError``.")
                    lines.append(f"        public func {name}(")
                    lines.append(f"            _ request: {request} = {request}(), options: CallOptions = CallOptions()")
                    lines.append(f"        ) async throws -> {response} {{")
                    lines.append(f"            try await self.client.unary({descriptor}, request, options: options)")
                lines.append("        }")
            lines.append("    }")
            lines.append("")
            lines.append(f"    /// The calls of `{package}.{service['name']}`.")
            lines.append(f"    public var {prop}: {struct} {{ {struct}(client: self) }}")
            lines.append("}")
            lines.append("")
    return "\n".join(lines)


def update_protocol_doc(protos, doc):
    path = pathlib.Path(doc)
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{doc}: markers {BEGIN!r} ... {END!r} not found")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    text = head + method_docs(protos) + tail
    if LIMITS_BEGIN not in text or LIMITS_END not in text:
        raise SystemExit(f"{doc}: markers {LIMITS_BEGIN!r} ... {LIMITS_END!r} not found")
    head, rest = text.split(LIMITS_BEGIN, 1)
    _, tail = rest.split(LIMITS_END, 1)
    path.write_text(head + limits_docs(protos) + tail)


def main(protos, output):
    lines = [
        "// DO NOT EDIT.",
        "// Generated by scripts/generate-schema-catalog.py from the message and service declarations in Protos/.",
        "",
        "import SwiftProtobuf",
        "",
    ]
    everything = []
    all_messages = []
    for path in sorted(pathlib.Path(protos).rglob("*.proto")):
        package, services, messages = parse(path)
        all_messages += [swift_type(package, name) for name in messages]
        for service in services:
            full_service = f"{package}.{service['name']}"
            lines.append("extension MethodCatalog {")
            for doc in service["doc"]:
                lines.append(f"    /// {doc}".rstrip())
            lines.append(f"    public enum {service['name']} {{")
            lines.append(f"        /// `{full_service}`")
            lines.append(f"        public static let name = \"{full_service}\"")
            for method in service["methods"]:
                request = swift_type(package, method["request"])
                response = swift_type(package, method["response"])
                kind = ".serverStreaming" if method["streaming"] else ".unary"
                prop = lower_camel(method["name"])
                lines.append("")
                for doc in method["doc"]:
                    lines.append(f"        /// {doc}".rstrip())
                lines.append(f"        public static let {prop} = MethodDescriptor<{request}, {response}>(")
                lines.append(f"            service: name,")
                lines.append(f"            method: \"{method['name']}\",")
                lines.append(f"            kind: {kind}")
                lines.append("        )")
                everything.append(f"{service['name']}.{prop}.info")
            lines.append("    }")
            lines.append("}")
            lines.append("")
    lines.append("extension MethodCatalog {")
    lines.append("    /// Every method of the protocol, in schema order.")
    lines.append("    public static let all: [MethodInfo] = [")
    for entry in everything:
        lines.append(f"        {entry},")
    lines.append("    ]")
    lines.append("}")
    lines.append("")
    lines += limits_swift(protos)
    lines.append("")
    lines.append("extension HavenSchema {")
    lines.append("    /// Every message type of the schema, in file and declaration order.")
    lines.append("    public static let messageTypes: [any SwiftProtobuf.Message.Type] = [")
    for name in all_messages:
        lines.append(f"        {name}.self,")
    lines.append("    ]")
    lines.append("}")
    pathlib.Path(output).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit("usage: generate-schema-catalog.py PROTOS_DIR OUTPUT_SWIFT PROTOCOL_MD CLIENT_SWIFT")
    main(sys.argv[1], sys.argv[2])
    update_protocol_doc(sys.argv[1], sys.argv[3])
    pathlib.Path(sys.argv[4]).write_text(client_code(sys.argv[1]))
