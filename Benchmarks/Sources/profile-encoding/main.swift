// Encodes (or decodes) the medium case many times, for instruction-level
// profiles that do not depend on machine load:
//
//   swift build --package-path Benchmarks -c release --product profile-encoding
//   valgrind --tool=callgrind --callgrind-out-file=encode.out \
//       Benchmarks/.build/release/profile-encoding encode 2000
//   callgrind_annotate encode.out | head -40
import BenchmarkMessages
import CHavenProtobufC
import Foundation
import HavenProtocol
import NIOCore
import SwiftProtobuf

let arguments = CommandLine.arguments
guard arguments.count == 3, let count = Int(arguments[2]),
    ["encode", "encode-into", "decode", "decode-plain", "decode-c", "encode-plain", "encode-c"].contains(arguments[1])
else {
    print("usage: profile-encoding encode|encode-into|encode-plain|encode-c|decode|decode-plain|decode-c COUNT")
    exit(64)
}
let message = Representative.mediumCase
let encoder = FrameEncoder()
let bytes: [UInt8] = try message.serializedBytes()
let payload = try encoder.encode(message).getSlice(at: Frame.headerLength, length: bytes.count)!
var total = 0
switch arguments[1] {
case "encode":
    for _ in 0..<count { total &+= try encoder.encode(message).readableBytes }
case "encode-into":
    var outgoing = ByteBuffer()
    for _ in 0..<count {
        try encoder.encode(message, into: &outgoing)
        total &+= outgoing.readableBytes
    }
case "encode-plain":
    for _ in 0..<count { total &+= (try message.serializedBytes() as [UInt8]).count }
case "encode-c":
    let codec = ProtobufCCodec(messageName: Haven_V1_Case.protoMessageName)!
    let cMessage = bytes.withUnsafeBytes { codec.unpack($0)! }
    for _ in 0..<count { total &+= ProtobufCCodec.pack(cMessage).count }
case "decode-plain":
    for _ in 0..<count { total &+= try Haven_V1_Case(serializedBytes: bytes).events.count }
case "decode-c":
    let codec = ProtobufCCodec(messageName: Haven_V1_Case.protoMessageName)!
    for _ in 0..<count {
        let decoded = bytes.withUnsafeBytes { codec.unpack($0)! }
        haven_pbc_free(decoded)
        total &+= 1
    }
default:
    for _ in 0..<count { total &+= try Haven_V1_Case(decodingPayload: payload).events.count }
}
print(total)
