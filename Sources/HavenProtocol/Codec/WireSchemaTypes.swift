/// The schema's messages and fields as data, written by protoc-gen-haven
/// beside the codec (`Generated/WireSchema.swift`).
///
/// For tools and tests that work on every message without naming each one:
/// the differential tests generate random values of every message from it,
/// and the fuzz targets pick a message type from it.
public enum _WireSchema {
    /// A field's type as the schema declares it.
    public enum Kind: Sendable, Equatable {
        case double, float, int64, uint64, int32, fixed64, fixed32, bool, string, group, bytes, uint32
        case sfixed32, sfixed64, sint32, sint64
        /// An enum field, with the values the schema names.
        case enumeration([Int32])
        /// A message field, with the message's full protobuf name.
        case message(String)
    }

    /// One field of a message.
    public struct Field: Sendable {
        public let number: Int32
        public let kind: Kind
        public let repeated: Bool
        public let packed: Bool
        /// The index of the oneof it belongs to, if any.
        public let oneof: Int?

        init(number: Int32, kind: Kind, repeated: Bool, packed: Bool, oneof: Int?) {
            self.number = number
            self.kind = kind
            self.repeated = repeated
            self.packed = packed
            self.oneof = oneof
        }
    }

    /// One message type.
    public struct Message: Sendable {
        /// The full protobuf name, e.g. `haven.v1.Case`.
        public let name: String
        public let type: any HavenWireMessage.Type
        /// Its fields, in number order.
        public let fields: [Field]

        init(name: String, type: any HavenWireMessage.Type, fields: [Field]) {
            self.name = name
            self.type = type
            self.fields = fields
        }
    }

    /// The messages by full protobuf name.
    public static let byName: [String: Message] = Dictionary(
        uniqueKeysWithValues: messages.map { ($0.name, $0) }
    )
}
