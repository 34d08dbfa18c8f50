import Foundation
import SwiftProtobuf

/// The maximum of one field of a request message.
public struct HavenFieldLimit: Sendable, Hashable {
    /// The field's name in `Protos/` (`place`, `accused_ids`).
    public let name: String
    /// For a string or bytes field: the most UTF-8 bytes (for a repeated one, of each item).
    public let maxBytes: Int?
    /// For a repeated field: the most items.
    public let maxItems: Int?

    /// A field's limits.
    public init(name: String, maxBytes: Int? = nil, maxItems: Int? = nil) {
        self.name = name
        self.maxBytes = maxBytes
        self.maxItems = maxItems
    }
}

/// The documented maximum of every string, bytes and repeated field of every
/// message a request can carry, generated from `Protos/` (the `[max: …]`
/// markers and the defaults stated in `common.proto`; `docs/PROTOCOL.md` §10.1
/// prints the same table).
///
/// The server checks each request against it before running the method; a
/// client can check before sending:
///
/// ```swift
/// if let violation = HavenFieldLimits.violation(in: request) {
///     print("\(violation.field): \(violation.problem)")
/// }
/// ```
public enum HavenFieldLimits {
    /// A field over its limit.
    public struct Violation: Sendable, Hashable {
        /// The field's path from the request (`event.arrest.place`, `identity.contacts[3].value`).
        public var field: String
        /// What is wrong, without the value (`longer than 200 bytes`, `more than 20 items`).
        public var problem: String

        /// A violation of `field`.
        public init(field: String, problem: String) {
            self.field = field
            self.problem = problem
        }
    }

    /// The first field of `message` (or of a message inside it) over its limit, if any.
    ///
    /// - Parameter message: A request, or any message of the schema.
    /// - Returns: The violation, or nil when every field is within its limit.
    public static func violation(in message: some SwiftProtobuf.Message) -> Violation? {
        var checker = LimitChecker(messageName: type(of: message).protoMessageName, path: "")
        do {
            try message.traverse(visitor: &checker)
            return nil
        } catch let violation as LimitChecker.Found {
            return violation.violation
        } catch {
            return nil
        }
    }

    /// Throws INVALID_ARGUMENT with a `FieldViolation` for the first field of
    /// `message` over its limit.
    ///
    /// - Throws: ``HavenError`` INVALID_ARGUMENT naming the field, never its value.
    public static func check(_ message: some SwiftProtobuf.Message) throws(HavenError) {
        if let violation = self.violation(in: message) {
            throw HavenError.invalidField(violation.field, violation.problem)
        }
    }
}

/// Walks a message with swift-protobuf's visitor, checking each field against
/// ``HavenFieldLimits/byMessage``; stops at the first violation.
private struct LimitChecker: SwiftProtobuf.Visitor {
    struct Found: Error {
        var violation: HavenFieldLimits.Violation
    }

    let limits: [Int: HavenFieldLimit]
    let path: String

    init(messageName: String, path: String) {
        self.limits = HavenFieldLimits.byMessage[messageName] ?? [:]
        self.path = path
    }

    private func name(_ number: Int) -> String {
        let name = self.limits[number]?.name ?? "#\(number)"
        return self.path.isEmpty ? name : "\(self.path).\(name)"
    }

    private func fail(_ field: String, _ problem: String) -> Found {
        Found(violation: HavenFieldLimits.Violation(field: field, problem: problem))
    }

    private func checkBytes(_ count: Int, _ number: Int, _ field: @autoclosure () -> String) throws {
        if let max = self.limits[number]?.maxBytes, count > max {
            throw self.fail(field(), "longer than \(max) bytes")
        }
    }

    private func checkItems(_ count: Int, _ number: Int) throws {
        if let max = self.limits[number]?.maxItems, count > max {
            throw self.fail(self.name(number), "more than \(max) items")
        }
    }

    private func nested<M: SwiftProtobuf.Message>(_ value: M, _ path: String) throws {
        var checker = LimitChecker(messageName: M.protoMessageName, path: path)
        try value.traverse(visitor: &checker)
    }

    // Strings, bytes and messages: the fields that carry size.

    mutating func visitSingularStringField(value: String, fieldNumber: Int) throws {
        try self.checkBytes(value.utf8.count, fieldNumber, self.name(fieldNumber))
    }

    mutating func visitSingularBytesField(value: Data, fieldNumber: Int) throws {
        try self.checkBytes(value.count, fieldNumber, self.name(fieldNumber))
    }

    mutating func visitRepeatedStringField(value: [String], fieldNumber: Int) throws {
        try self.checkItems(value.count, fieldNumber)
        for (index, item) in value.enumerated() {
            try self.checkBytes(item.utf8.count, fieldNumber, "\(self.name(fieldNumber))[\(index)]")
        }
    }

    mutating func visitRepeatedBytesField(value: [Data], fieldNumber: Int) throws {
        try self.checkItems(value.count, fieldNumber)
        for (index, item) in value.enumerated() {
            try self.checkBytes(item.count, fieldNumber, "\(self.name(fieldNumber))[\(index)]")
        }
    }

    mutating func visitSingularMessageField<M: SwiftProtobuf.Message>(value: M, fieldNumber: Int) throws {
        try self.nested(value, self.name(fieldNumber))
    }

    mutating func visitRepeatedMessageField<M: SwiftProtobuf.Message>(value: [M], fieldNumber: Int) throws {
        try self.checkItems(value.count, fieldNumber)
        for (index, item) in value.enumerated() {
            try self.nested(item, "\(self.name(fieldNumber))[\(index)]")
        }
    }

    mutating func visitSingularGroupField<G: SwiftProtobuf.Message>(value: G, fieldNumber: Int) throws {
        try self.nested(value, self.name(fieldNumber))
    }

    mutating func visitRepeatedEnumField<E: SwiftProtobuf.Enum>(value: [E], fieldNumber: Int) throws {
        try self.checkItems(value.count, fieldNumber)
    }

    mutating func visitPackedEnumField<E: SwiftProtobuf.Enum>(value: [E], fieldNumber: Int) throws {
        try self.checkItems(value.count, fieldNumber)
    }

    mutating func visitPackedInt32Field(value: [Int32], fieldNumber: Int) throws {
        try self.checkItems(value.count, fieldNumber)
    }

    mutating func visitPackedUInt32Field(value: [UInt32], fieldNumber: Int) throws {
        try self.checkItems(value.count, fieldNumber)
    }

    mutating func visitPackedInt64Field(value: [Int64], fieldNumber: Int) throws {
        try self.checkItems(value.count, fieldNumber)
    }

    mutating func visitPackedUInt64Field(value: [UInt64], fieldNumber: Int) throws {
        try self.checkItems(value.count, fieldNumber)
    }

    mutating func visitPackedBoolField(value: [Bool], fieldNumber: Int) throws {
        try self.checkItems(value.count, fieldNumber)
    }

    // Scalars carry no size of their own.

    mutating func visitSingularDoubleField(value: Double, fieldNumber: Int) throws {}
    mutating func visitSingularInt64Field(value: Int64, fieldNumber: Int) throws {}
    mutating func visitSingularUInt64Field(value: UInt64, fieldNumber: Int) throws {}
    mutating func visitSingularBoolField(value: Bool, fieldNumber: Int) throws {}
    mutating func visitSingularEnumField<E: SwiftProtobuf.Enum>(value: E, fieldNumber: Int) throws {}

    mutating func visitMapField<KeyType, ValueType: MapValueType>(
        fieldType: _ProtobufMap<KeyType, ValueType>.Type,
        value: _ProtobufMap<KeyType, ValueType>.BaseType,
        fieldNumber: Int
    ) throws {
        try self.checkItems(value.count, fieldNumber)
    }

    mutating func visitMapField<KeyType, ValueType>(
        fieldType: _ProtobufEnumMap<KeyType, ValueType>.Type,
        value: _ProtobufEnumMap<KeyType, ValueType>.BaseType,
        fieldNumber: Int
    ) throws where ValueType.RawValue == Int {
        try self.checkItems(value.count, fieldNumber)
    }

    mutating func visitMapField<KeyType, ValueType>(
        fieldType: _ProtobufMessageMap<KeyType, ValueType>.Type,
        value: _ProtobufMessageMap<KeyType, ValueType>.BaseType,
        fieldNumber: Int
    ) throws {
        try self.checkItems(value.count, fieldNumber)
    }

    mutating func visitExtensionFields(fields: ExtensionFieldValueSet, start: Int, end: Int) throws {}

    mutating func visitExtensionFieldsAsMessageSet(fields: ExtensionFieldValueSet, start: Int, end: Int) throws {}

    // Unknown fields (a newer client's) are bounded by the frame limit, and once stored by the record limit.
    mutating func visitUnknown(bytes: Data) throws {}
}
