import Foundation
import SwiftProtobuf
import SwiftProtobufPluginLibrary

/// Haven's schema as the generator reads it: services, methods and the
/// bounds of every request field, from protoc's descriptors (never from the
/// .proto text).
struct Schema {
    /// Whether a method may be repeated safely, from `option idempotency_level`.
    enum Idempotency: String {
        /// `NO_SIDE_EFFECTS`: a read.
        case noSideEffects
        /// `IDEMPOTENT`: a write that a retry cannot apply twice (it carries an idempotency key).
        case idempotent
        /// The default: a retry may apply the write again (compare-and-set writes fail instead).
        case unknown
    }

    struct Method {
        let name: String
        let service: Service.Name
        let requestType: String
        let responseType: String
        let requestName: String
        let responseName: String
        let requestFullName: String
        let streaming: Bool
        let idempotency: Idempotency
        let doc: [String]
        /// The request carries an `idempotency_key` field.
        let keyed: Bool
    }

    struct Service {
        struct Name {
            let short: String
            let full: String
        }
        let name: Name
        let package: String
        let file: String
        let doc: [String]
        let methods: [Method]
    }

    struct FieldLimit {
        let name: String
        let number: Int32
        let maxBytes: Int?
        let maxItems: Int?
    }

    struct LimitedMessage {
        let fullName: String
        let name: String
        let fields: [FieldLimit]
    }

    /// The files read, by name, as protoc described them.
    let files: [FileDescriptor]
    let services: [Service]
    /// Every message type, by its Swift name, in file and declaration order.
    let messageTypes: [String]
    /// Every message a request can carry (and `Hello` and `CallStart`), with each field's bound.
    let limitedMessages: [LimitedMessage]

    init(files: [FileDescriptor]) throws {
        let namer = SwiftProtobufNamer()
        var services: [Service] = []
        var messageTypes: [String] = []
        var roots: [Descriptor] = []
        for file in files {
            func collect(_ messages: [Descriptor]) {
                for message in messages {
                    messageTypes.append(namer.fullName(message: message))
                    collect(message.messages)
                }
            }
            collect(file.messages)
            // The envelopes' bounded parts: the hello, and a call start's own fields (its trace context).
            for envelope in ["haven.v1.Hello", "haven.v1.CallStart"].reversed() {
                if let message = file.messages.first(where: { $0.fullName == envelope }) {
                    roots.insert(message, at: 0)
                }
            }
            for service in file.services {
                let name = Service.Name(short: service.name, full: service.fullName)
                var methods: [Method] = []
                for method in service.methods {
                    guard !method.clientStreaming else {
                        throw GeneratorError(
                            "\(method.fullName): client-streaming methods are not part of the Haven protocol"
                        )
                    }
                    let keyed = method.inputType.fields.contains { $0.name == "idempotency_key" && $0.type == .string }
                    let idempotency: Idempotency =
                        switch method.options.idempotencyLevel {
                        case .noSideEffects: .noSideEffects
                        case .idempotent: .idempotent
                        case .idempotencyUnknown: .unknown
                        }
                    if keyed, idempotency != .idempotent {
                        throw GeneratorError(
                            "\(method.fullName): its request carries an idempotency_key, so it must declare option idempotency_level = IDEMPOTENT"
                        )
                    }
                    if idempotency == .noSideEffects, method.serverStreaming == false,
                        method.inputType.fields.contains(where: { $0.name == "expected_version" })
                    {
                        throw GeneratorError(
                            "\(method.fullName): a method with expected_version is a write, not NO_SIDE_EFFECTS"
                        )
                    }
                    methods.append(
                        Method(
                            name: method.name,
                            service: name,
                            requestType: namer.fullName(message: method.inputType),
                            responseType: namer.fullName(message: method.outputType),
                            requestName: method.inputType.name,
                            responseName: method.outputType.name,
                            requestFullName: method.inputType.fullName,
                            streaming: method.serverStreaming,
                            idempotency: idempotency,
                            doc: Self.comment(method),
                            keyed: keyed
                        )
                    )
                    roots.append(method.inputType)
                }
                services.append(
                    Service(
                        name: name,
                        package: file.package,
                        file: file.name,
                        doc: Self.comment(service),
                        methods: methods
                    )
                )
            }
        }
        self.files = files
        self.services = services
        self.messageTypes = messageTypes
        self.limitedMessages = try Self.limits(roots: roots)
    }

    /// The comment before a declaration, a line each, trimmed.
    static func comment(_ element: any ProvidesSourceCodeLocation) -> [String] {
        guard let location = element.sourceCodeInfoLocation, location.hasLeadingComments else { return [] }
        var lines = location.leadingComments.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        while lines.last == "" { lines.removeLast() }
        return lines
    }

    // MARK: Field limits

    /// The defaults stated in common.proto: identifiers 64 bytes, other text
    /// 200 bytes, lists 100 items, unless a `[max: …]` marker says otherwise.
    static let defaultIdentifierBytes = 64
    static let defaultTextBytes = 200
    static let defaultItems = 100
    static let identifierNames: Set<String> = ["id", "code", "reference", "cursor", "page_token", "idempotency_key"]

    /// Every message reachable from `roots` through message fields, breadth first.
    static func limits(roots: [Descriptor]) throws -> [LimitedMessage] {
        var reachable: [Descriptor] = []
        var seen: Set<String> = []
        var pending = roots
        while !pending.isEmpty {
            let message = pending.removeFirst()
            guard seen.insert(message.fullName).inserted else { continue }
            reachable.append(message)
            for field in message.fields where field.type == .message && !seen.contains(field.messageType.fullName) {
                pending.append(field.messageType)
            }
        }
        return try reachable.map { message in
            LimitedMessage(
                fullName: message.fullName,
                name: message.name,
                fields: try message.fields.map { try Self.limit(of: $0) }
            )
        }
    }

    /// `[max: 20 items]`, `[max: 4 KiB]`, `[max: 50 items of 64 bytes]`.
    static func marker(in text: String) throws -> (items: Int?, bytes: Int?)? {
        guard let start = text.range(of: "[max:") else { return nil }
        guard let end = text[start.upperBound...].firstIndex(of: "]") else {
            throw GeneratorError("unterminated limit marker in: \(text)")
        }
        let words = text[start.upperBound..<end].split(separator: " ").map(String.init)
        var items: Int?
        var bytes: Int?
        var index = 0
        func number() throws -> Int {
            guard index < words.count, let value = Int(words[index]) else {
                throw GeneratorError("malformed limit marker in: \(text)")
            }
            index += 1
            return value
        }
        while index < words.count {
            if words[index] == "of" {
                index += 1
                continue
            }
            let value = try number()
            guard index < words.count else { throw GeneratorError("malformed limit marker in: \(text)") }
            switch words[index] {
            case "item", "items": items = value
            case "bytes": bytes = value
            case "KiB": bytes = value * 1024
            default: throw GeneratorError("malformed limit marker in: \(text)")
            }
            index += 1
        }
        return (items, bytes)
    }

    static func limit(of field: FieldDescriptor) throws -> FieldLimit {
        let doc = Self.comment(field).joined(separator: " ")
        let marker = try Self.marker(in: doc)
        var items = marker?.items
        var bytes = marker?.bytes
        let text = field.type == .string || field.type == .bytes
        if text, bytes == nil {
            let name = field.name
            let identifier =
                Self.identifierNames.contains(name)
                || ["_id", "_ids", "_code", "_codes"].contains { name.hasSuffix($0) }
            bytes = identifier ? Self.defaultIdentifierBytes : Self.defaultTextBytes
        }
        if field.isRepeated, items == nil { items = Self.defaultItems }
        if !text { bytes = nil }
        if !field.isRepeated { items = nil }
        return FieldLimit(name: field.name, number: field.number, maxBytes: bytes, maxItems: items)
    }
}
