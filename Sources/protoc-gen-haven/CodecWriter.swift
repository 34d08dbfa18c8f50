import Foundation
import SwiftProtobuf
import SwiftProtobufPluginLibrary

/// HavenProtocol's specialised codec: for every message, an extension
/// conforming it to `HavenWireMessage` with a sizing pass, a writing pass
/// and a decoder, all concrete code (one file per .proto file).
///
/// The encoding is swift-protobuf's, byte for byte: fields in number order;
/// implicit-presence fields only when not zero or empty; packed repeated
/// scalars; negative `int32` and enum values sign-extended to ten bytes;
/// unknown fields last. The decoder handles the schema's own fields in the
/// wire type the schema gives them (both packed and unpacked for repeated
/// scalars); any other tag throws `_WireFallback`, and the caller decodes
/// the whole input with swift-protobuf instead.
struct CodecWriter: SchemaWriter {
    func files(for schema: Schema) throws -> [(path: String, contents: String)] {
        try Self.refuseRecursion(schema.files)
        let namer = SwiftProtobufNamer()
        var files = try schema.files.map { file in
            var out = Lines.swiftFile(importing: "Foundation")
            out.add("import SwiftProtobuf")
            func add(_ messages: [Descriptor]) throws {
                for message in messages {
                    out.add()
                    try Self.write(message, namer: namer, to: &out)
                    try add(message.messages)
                }
            }
            try add(file.messages)
            let name = file.name.replacingOccurrences(of: ".proto", with: "").replacingOccurrences(of: "/", with: "_")
            return ("Sources/HavenProtocol/Generated/\(name)+WireCodec.swift", out.text)
        }
        files.append(("Sources/HavenProtocol/Generated/WireSchema.swift", Self.table(schema.files, namer: namer)))
        return files
    }

    /// Every message's fields as data (`_WireSchema`), for the tests that
    /// generate random values of every message and compare codecs on them.
    static func table(_ files: [FileDescriptor], namer: SwiftProtobufNamer) -> String {
        var out = Lines.swiftFile(importing: "SwiftProtobuf")
        out.add()
        out.add("extension _WireSchema {")
        out.add("    /// Every message of the schema, in file and declaration order.")
        out.add("    public static let messages: [Message] = [")
        func add(_ messages: [Descriptor]) {
            for message in messages {
                out.add("        Message(")
                out.add("            name: \"\(message.fullName)\",")
                out.add("            type: \(namer.fullName(message: message)).self,")
                out.add("            fields: [")
                for field in message.fields.sorted(by: { $0.number < $1.number }) {
                    let kind: String
                    switch field.type {
                    case .message: kind = ".message(\"\(field.messageType.fullName)\")"
                    case .enum:
                        let values = field.enumType.values.map { String($0.number) }.joined(separator: ", ")
                        kind = ".enumeration([\(values)])"
                    default: kind = ".\(field.type)"
                    }
                    let oneof = field.realContainingOneof.map { String($0.index) } ?? "nil"
                    out.add(
                        "                Field(number: \(field.number), kind: \(kind), repeated: \(field.isRepeated), packed: \(field.isPacked), oneof: \(oneof)),"
                    )
                }
                out.add("            ]")
                out.add("        ),")
                add(message.messages)
            }
        }
        for file in files { add(file.messages) }
        out.add("    ]")
        out.add("}")
        return out.text
    }

    /// A recursive message type would need a depth budget like
    /// swift-protobuf's; Haven's schema has none, and the generator says so
    /// rather than generate a decoder without one.
    static func refuseRecursion(_ files: [FileDescriptor]) throws {
        func visit(_ message: Descriptor, _ path: [String]) throws {
            for field in message.fields where field.type == .message || field.type == .group {
                let next = field.messageType!
                if path.contains(next.fullName) {
                    throw GeneratorError(
                        "\(next.fullName) contains itself (\((path + [next.fullName]).joined(separator: " → "))): the wire codec has no nesting budget for recursive messages"
                    )
                }
                try visit(next, path + [next.fullName])
            }
        }
        for file in files {
            func all(_ messages: [Descriptor]) throws {
                for message in messages {
                    try visit(message, [message.fullName])
                    try all(message.messages)
                }
            }
            try all(file.messages)
        }
    }

    // MARK: One message

    static func write(_ message: Descriptor, namer: SwiftProtobufNamer, to out: inout Lines) throws {
        let type = namer.fullName(message: message)
        let fields = try message.fields.sorted { $0.number < $1.number }.map { try Field($0, namer: namer) }
        out.add("extension \(type): HavenWireMessage {")

        out.add("    public func _wireSize(_ sizes: inout _WireSizes) -> Int {")
        out.add("        var n = 0")
        for run in Self.runs(fields) {
            if run.count == 1 {
                run[0].size(to: &out)
            } else {
                out.add("        switch self.\(run[0].name) {")
                for field in run { field.sizeCase(to: &out) }
                out.add("        default: break")
                out.add("        }")
            }
        }
        out.add("        n &+= self.unknownFields.data.count")
        out.add("        return n")
        out.add("    }")
        out.add()

        out.add("    public func _wireWrite(_ w: inout _WireWriter, _ sizes: inout _WireSizes) {")
        for run in Self.runs(fields) {
            if run.count == 1 {
                run[0].write(to: &out)
            } else {
                out.add("        switch self.\(run[0].name) {")
                for field in run { field.writeCase(to: &out) }
                out.add("        default: break")
                out.add("        }")
            }
        }
        out.add("        if !self.unknownFields.data.isEmpty { w.raw(self.unknownFields.data) }")
        out.add("    }")
        out.add()

        out.add("    public mutating func _wireMerge(_ r: inout _WireReader) throws(_WireFallback) {")
        let repeated = fields.filter { $0.descriptor.isRepeated }
        for field in repeated {
            out.add("        var \(field.local): [\(field.elementType)] = []")
        }
        out.add("        while !r.isAtEnd {")
        out.add("            switch try r.tag() {")
        for field in fields { field.decode(to: &out) }
        out.add("            default: throw _WireFallback()")
        out.add("            }")
        out.add("        }")
        for field in repeated {
            out.add("        if !\(field.local).isEmpty {")
            out.add(
                "            if self.\(field.name).isEmpty { self.\(field.name) = \(field.local) } else { self.\(field.name).append(contentsOf: \(field.local)) }"
            )
            out.add("        }")
        }
        out.add("    }")
        out.add("}")
    }

    /// Fields in number order, with each run of consecutive members of one
    /// oneof together: at most one of them is set, so a run is one `switch`
    /// on the oneof (read once) rather than a test per member.
    static func runs(_ fields: [Field]) -> [[Field]] {
        var runs: [[Field]] = []
        for field in fields {
            if let oneof = field.descriptor.realContainingOneof, let last = runs.last?.last,
                last.descriptor.realContainingOneof === oneof
            {
                runs[runs.count - 1].append(field)
            } else {
                runs.append([field])
            }
        }
        return runs
    }

    // MARK: One field

    /// How a field of one kind is sized, written and read.
    enum Kind {
        case string, bytes, bool, message
        /// A varint kind: its Swift type, its size and write calls, and its conversion from the wire's `UInt64`.
        case varint(swift: String, size: (String) -> String, write: (String) -> String, read: (String) -> String)
        /// A fixed-width kind: its byte count, its Swift type, and the conversions to and from the wire's integer.
        case fixed(bytes: Int, swift: String, toBits: (String) -> String, fromBits: (String) -> String)

        var wireType: Int {
            switch self {
            case .string, .bytes, .message: 2
            case .bool, .varint: 0
            case .fixed(let bytes, _, _, _): bytes == 8 ? 1 : 5
            }
        }

        var isScalarNumber: Bool {
            switch self {
            case .bool, .varint, .fixed: true
            case .string, .bytes, .message: false
            }
        }

        /// Whether a value's size without its tag is the same for every value
        /// (so sizing does not read the value).
        var hasConstantSize: Bool {
            switch self {
            case .bool, .fixed: true
            case .varint, .string, .bytes, .message: false
            }
        }
    }

    struct Field {
        let descriptor: FieldDescriptor
        let kind: Kind
        /// The Swift property (for a oneof member, the oneof's property).
        let name: String
        /// `hasX` for a field with explicit presence that is not in a oneof.
        let has: String?
        /// `.caseName` for a oneof member.
        let oneofCase: String?
        /// The Swift type of one value.
        let elementType: String

        var number: Int { Int(self.descriptor.number) }
        var local: String { "_\(self.name.replacingOccurrences(of: "`", with: ""))" }

        init(_ field: FieldDescriptor, namer: SwiftProtobufNamer) throws {
            self.descriptor = field
            if field.isMap { throw GeneratorError("\(field.fullName): map fields are not supported by the wire codec") }
            switch field.type {
            case .string:
                self.kind = .string
                self.elementType = "String"
            case .bytes:
                self.kind = .bytes
                self.elementType = "Data"
            case .bool:
                self.kind = .bool
                self.elementType = "Bool"
            case .message:
                self.kind = .message
                self.elementType = namer.fullName(message: field.messageType)
            case .enum:
                let type = namer.fullName(enum: field.enumType)
                self.elementType = type
                self.kind = .varint(
                    swift: type,
                    size: { "_WireSize.int64(Int64(\($0).rawValue))" },
                    write: { "w.int64(Int64(\($0).rawValue))" },
                    read: { "try \(type)(rawValue: Int(Int32(truncatingIfNeeded: \($0)))).orFallback()" }
                )
            case .int32:
                self.elementType = "Int32"
                self.kind = .varint(
                    swift: "Int32",
                    size: { "_WireSize.int32(\($0))" },
                    write: { "w.int32(\($0))" },
                    read: { "Int32(truncatingIfNeeded: \($0))" }
                )
            case .int64:
                self.elementType = "Int64"
                self.kind = .varint(
                    swift: "Int64",
                    size: { "_WireSize.int64(\($0))" },
                    write: { "w.int64(\($0))" },
                    read: { "Int64(bitPattern: \($0))" }
                )
            case .uint32:
                self.elementType = "UInt32"
                self.kind = .varint(
                    swift: "UInt32",
                    size: { "_WireSize.varint(UInt64(\($0)))" },
                    write: { "w.varint(UInt64(\($0)))" },
                    read: { "UInt32(truncatingIfNeeded: \($0))" }
                )
            case .uint64:
                self.elementType = "UInt64"
                self.kind = .varint(
                    swift: "UInt64",
                    size: { "_WireSize.varint(\($0))" },
                    write: { "w.varint(\($0))" },
                    read: { $0 }
                )
            case .sint32:
                self.elementType = "Int32"
                self.kind = .varint(
                    swift: "Int32",
                    size: { "_WireSize.varint(UInt64(_ZigZag.encoded(\($0))))" },
                    write: { "w.varint(UInt64(_ZigZag.encoded(\($0))))" },
                    read: { "_ZigZag.decoded(UInt32(truncatingIfNeeded: \($0)))" }
                )
            case .sint64:
                self.elementType = "Int64"
                self.kind = .varint(
                    swift: "Int64",
                    size: { "_WireSize.varint(_ZigZag.encoded(\($0)))" },
                    write: { "w.varint(_ZigZag.encoded(\($0)))" },
                    read: { "_ZigZag.decoded(\($0))" }
                )
            case .double:
                self.elementType = "Double"
                self.kind = .fixed(
                    bytes: 8,
                    swift: "Double",
                    toBits: { "\($0).bitPattern" },
                    fromBits: { "Double(bitPattern: \($0))" }
                )
            case .float:
                self.elementType = "Float"
                self.kind = .fixed(
                    bytes: 4,
                    swift: "Float",
                    toBits: { "\($0).bitPattern" },
                    fromBits: { "Float(bitPattern: \($0))" }
                )
            case .fixed64:
                self.elementType = "UInt64"
                self.kind = .fixed(bytes: 8, swift: "UInt64", toBits: { $0 }, fromBits: { $0 })
            case .sfixed64:
                self.elementType = "Int64"
                self.kind = .fixed(
                    bytes: 8,
                    swift: "Int64",
                    toBits: { "UInt64(bitPattern: \($0))" },
                    fromBits: { "Int64(bitPattern: \($0))" }
                )
            case .fixed32:
                self.elementType = "UInt32"
                self.kind = .fixed(bytes: 4, swift: "UInt32", toBits: { $0 }, fromBits: { $0 })
            case .sfixed32:
                self.elementType = "Int32"
                self.kind = .fixed(
                    bytes: 4,
                    swift: "Int32",
                    toBits: { "UInt32(bitPattern: \($0))" },
                    fromBits: { "Int32(bitPattern: \($0))" }
                )
            case .group:
                throw GeneratorError("\(field.fullName): groups are not supported by the wire codec")
            }
            if let oneof = field.realContainingOneof {
                self.name = namer.messagePropertyName(oneof: oneof).name
                self.oneofCase =
                    namer.messagePropertyNames(field: field, prefixed: ".", includeHasAndClear: false)
                    .prefixed
                self.has = nil
            } else {
                let names = namer.messagePropertyNames(field: field, prefixed: "_", includeHasAndClear: true)
                self.name = names.name
                self.oneofCase = nil
                self.has = field.hasPresence && !field.isRepeated ? names.has : nil
            }
        }

        // MARK: Tags

        func tag(wireType: Int) -> UInt32 { UInt32(self.number) << 3 | UInt32(wireType) }

        /// The tag's bytes, written by literal.
        func writeTag(wireType: Int) -> String {
            var value = self.tag(wireType: wireType)
            var bytes: [UInt8] = []
            while value >= 0x80 {
                bytes.append(UInt8(value & 0x7f) | 0x80)
                value >>= 7
            }
            bytes.append(UInt8(value))
            switch bytes.count {
            case 1: return "w.byte(\(bytes[0]))"
            case 2: return "w.tag(\(bytes[0]), \(bytes[1]))"
            default: return bytes.map { "w.byte(\($0))" }.joined(separator: "; ")
            }
        }

        func tagSize(wireType: Int) -> Int {
            var value = self.tag(wireType: wireType)
            var count = 1
            while value >= 0x80 {
                count += 1
                value >>= 7
            }
            return count
        }

        // MARK: Sizing

        /// The size of one value `v` without its tag (and the sizes it keeps).
        func valueSize(_ v: String, into out: inout Lines, indent: String) -> String {
            switch self.kind {
            case .string: return "_WireSize.delimited(\(v).utf8.count)"
            case .bytes: return "_WireSize.delimited(\(v).count)"
            case .bool: return "1"
            case .varint(_, let size, _, _): return size(v)
            case .fixed(let bytes, _, _, _): return "\(bytes)"
            case .message:
                out.add("\(indent)let slot = sizes.reserve()")
                out.add("\(indent)let size = \(v)._wireSize(&sizes)")
                out.add("\(indent)sizes.set(slot, size)")
                return "_WireSize.delimited(size)"
            }
        }

        /// The condition under which an implicit-presence value is written.
        func nonDefault(_ v: String) -> String {
            switch self.kind {
            case .string, .bytes: "!\(v).isEmpty"
            case .bool: v
            case .message: "true"
            case .varint: self.descriptor.type == .enum ? "\(v).rawValue != 0" : "\(v) != 0"
            case .fixed(_, _, let toBits, _): "\(toBits(v)) != 0"
            }
        }

        func size(to out: inout Lines) {
            let property = "self.\(self.name)"
            let tagSize = self.tagSize(wireType: self.kind.wireType)
            if self.descriptor.isRepeated {
                if self.kind.isScalarNumber && self.descriptor.isPacked {
                    let packedTag = self.tagSize(wireType: 2)
                    out.add("        if !\(property).isEmpty {")
                    if case .fixed(let bytes, _, _, _) = self.kind {
                        out.add("            n &+= \(packedTag) &+ _WireSize.delimited(\(property).count &* \(bytes))")
                    } else if case .bool = self.kind {
                        out.add("            n &+= \(packedTag) &+ _WireSize.delimited(\(property).count)")
                    } else {
                        out.add("            let slot = sizes.reserve()")
                        out.add("            var body = 0")
                        out.add(
                            "            for v in \(property) { body &+= \(self.valueSize("v", into: &out, indent: "")) }"
                        )
                        out.add("            sizes.set(slot, body)")
                        out.add("            n &+= \(packedTag) &+ _WireSize.delimited(body)")
                    }
                    out.add("        }")
                } else {
                    // Elements borrowed in place: `for v in array` would copy (retain) each.
                    // (UnsafeBufferPointer's subscript returns a copy; UnsafePointer's borrows.)
                    out.add("        \(property).withUnsafeBufferPointer { values in")
                    out.add("            guard let base = values.baseAddress else { return }")
                    out.add("            for i in 0..<values.count {")
                    let size = self.valueSize("base[i]", into: &out, indent: "                ")
                    out.add("                n &+= \(tagSize) &+ \(size)")
                    out.add("            }")
                    out.add("        }")
                }
            } else if let oneofCase {
                let binding = self.kind.hasConstantSize ? "_" : "let v"
                out.add("        if case \(oneofCase)(\(binding))? = \(property) {")
                let size = self.valueSize("v", into: &out, indent: "            ")
                out.add("            n &+= \(tagSize) &+ \(size)")
                out.add("        }")
            } else {
                let condition = self.has.map { "self.\($0)" } ?? self.nonDefault(property)
                out.add("        if \(condition) {")
                if !self.kind.hasConstantSize { out.add("            let v = \(property)") }
                let size = self.valueSize("v", into: &out, indent: "            ")
                out.add("            n &+= \(tagSize) &+ \(size)")
                out.add("        }")
            }
        }

        /// A oneof member's `case` in its run's sizing `switch`.
        func sizeCase(to out: inout Lines) {
            out.add("        case \(self.oneofCase!)(\(self.kind.hasConstantSize ? "_" : "let v"))?:")
            let size = self.valueSize("v", into: &out, indent: "            ")
            out.add("            n &+= \(self.tagSize(wireType: self.kind.wireType)) &+ \(size)")
        }

        // MARK: Writing

        /// A oneof member's `case` in its run's writing `switch`.
        func writeCase(to out: inout Lines) {
            out.add("        case \(self.oneofCase!)(let v)?:")
            out.add("            \(self.writeTag(wireType: self.kind.wireType))")
            self.writeValue("v", to: &out, indent: "            ")
        }

        func writeValue(_ v: String, to out: inout Lines, indent: String) {
            switch self.kind {
            case .string: out.add("\(indent)w.string(\(v))")
            case .bytes: out.add("\(indent)w.bytes(\(v))")
            case .bool: out.add("\(indent)w.byte(\(v) ? 1 : 0)")
            case .varint(_, _, let write, _): out.add("\(indent)\(write(v))")
            case .fixed(let bytes, _, let toBits, _): out.add("\(indent)w.fixed\(bytes * 8)(\(toBits(v)))")
            case .message:
                out.add("\(indent)w.length(sizes.next())")
                out.add("\(indent)\(v)._wireWrite(&w, &sizes)")
            }
        }

        func write(to out: inout Lines) {
            let property = "self.\(self.name)"
            let tag = self.writeTag(wireType: self.kind.wireType)
            if self.descriptor.isRepeated {
                if self.kind.isScalarNumber && self.descriptor.isPacked {
                    out.add("        if !\(property).isEmpty {")
                    out.add("            \(self.writeTag(wireType: 2))")
                    if case .fixed(let bytes, _, _, _) = self.kind {
                        out.add("            w.length(\(property).count &* \(bytes))")
                    } else if case .bool = self.kind {
                        out.add("            w.length(\(property).count)")
                    } else {
                        out.add("            w.length(sizes.next())")
                    }
                    out.add("            for v in \(property) {")
                    self.writeValue("v", to: &out, indent: "                ")
                    out.add("            }")
                    out.add("        }")
                } else {
                    out.add("        \(property).withUnsafeBufferPointer { values in")
                    out.add("            guard let base = values.baseAddress else { return }")
                    out.add("            for i in 0..<values.count {")
                    out.add("                \(tag)")
                    self.writeValue("base[i]", to: &out, indent: "                ")
                    out.add("            }")
                    out.add("        }")
                }
            } else if let oneofCase {
                out.add("        if case \(oneofCase)(let v)? = \(property) {")
                out.add("            \(tag)")
                self.writeValue("v", to: &out, indent: "            ")
                out.add("        }")
            } else {
                let condition = self.has.map { "self.\($0)" } ?? self.nonDefault(property)
                out.add("        if \(condition) {")
                out.add("            \(tag)")
                self.writeValue(property, to: &out, indent: "            ")
                out.add("        }")
            }
        }

        // MARK: Decoding

        /// An expression reading one value from reader `r` (not for messages).
        func readValue(_ r: String) -> String {
            switch self.kind {
            case .string: "try \(r).string()"
            case .bytes: "try \(r).bytes()"
            case .bool: "try \(r).bool()"
            case .varint(_, _, _, let read): read("try \(r).varint()")
            case .fixed(let bytes, _, _, let fromBits): fromBits("try \(r).fixed\(bytes * 8)()")
            case .message: fatalError("messages are read with their own decoder")
            }
        }

        func decode(to out: inout Lines) {
            let property = "self.\(self.name)"
            let tag = self.tag(wireType: self.kind.wireType)
            if self.descriptor.isRepeated {
                out.add("            case \(tag):")
                if case .message = self.kind {
                    out.add("                var body = try r.delimited()")
                    out.add("                var v = \(self.elementType)()")
                    out.add("                try v._wireMerge(&body)")
                    out.add("                \(self.local).append(v)")
                } else {
                    out.add("                \(self.local).append(\(self.readValue("r")))")
                }
                if self.kind.isScalarNumber {
                    // Packed and unpacked are both accepted, whichever the schema declares.
                    out.add("            case \(self.tag(wireType: 2)):")
                    out.add("                var body = try r.delimited()")
                    if case .fixed(let bytes, _, _, _) = self.kind {
                        out.add(
                            "                \(self.local).reserveCapacity(\(self.local).count &+ body.fixedCount(\(bytes)))"
                        )
                    } else {
                        out.add(
                            "                \(self.local).reserveCapacity(\(self.local).count &+ body.varintCount)"
                        )
                    }
                    out.add("                while !body.isAtEnd { \(self.local).append(\(self.readValue("body"))) }")
                }
            } else if let oneofCase {
                out.add("            case \(tag):")
                if case .message = self.kind {
                    out.add("                var body = try r.delimited()")
                    out.add("                var v = \(self.elementType)()")
                    out.add("                if case \(oneofCase)(let current)? = \(property) { v = current }")
                    out.add("                try v._wireMerge(&body)")
                    out.add("                \(property) = \(oneofCase)(v)")
                } else {
                    out.add("                \(property) = \(oneofCase)(\(self.readValue("r")))")
                }
            } else {
                out.add("            case \(tag):")
                if case .message = self.kind {
                    out.add("                var body = try r.delimited()")
                    out.add("                var v = \(property)")
                    out.add("                try v._wireMerge(&body)")
                    out.add("                \(property) = v")
                } else {
                    out.add("                \(property) = \(self.readValue("r"))")
                }
            }
        }
    }
}
