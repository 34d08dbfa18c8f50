import Foundation
import HavenProtocol
import HavenTestSupport
import Testing

@Suite("Status codes and errors")
struct StatusTests {
    @Test("the 17 codes carry gRPC's numbers and match the wire enum name for name")
    func codes() {
        #expect(StatusCode.allCases.count == 17)
        #expect(StatusCode.allCases.map(\.rawValue) == Array(0...16))
        for code in StatusCode.allCases {
            #expect(code.wire.rawValue == code.rawValue)
            #expect(StatusCode(wire: code.wire) == code)
        }
        #expect(Haven_V1_StatusCode.allCases.count == 17)
        #expect(StatusCode.failedPrecondition.rawValue == 9)
        #expect(StatusCode.unauthenticated.description == "UNAUTHENTICATED")
        #expect(StatusCode(rawValue: 17) == nil)
        #expect(StatusCode(wire: .UNRECOGNIZED(99)) == .unknown)
    }

    @Test("the wire enum's names are the specification's names")
    func names() {
        let wireNames = Haven_V1_StatusCode.allCases.map { "\($0)" }
        let specNames = StatusCode.allCases.map(\.description)
        for (wire, spec) in zip(wireNames, specNames) {
            // swift-protobuf names cases in lowerCamel: failedPrecondition <-> FAILED_PRECONDITION.
            #expect(wire.lowercased() == spec.replacingOccurrences(of: "_", with: "").lowercased())
        }
    }

    @Test("OK is not an error code")
    func okIsNotAnError() {
        #expect(HavenError.Code(.ok) == nil)
        #expect(HavenError.Code(.notFound) == .notFound)
        #expect(StatusCode.allCases.compactMap(HavenError.Code.init).count == 16)
    }

    @Test("describes itself as CODE: message")
    func description() {
        let error = HavenError.invalidField("office.time_zone", "not an IANA time zone")
        #expect("\(error)" == "INVALID_ARGUMENT: office.time_zone: not an IANA time zone")
        #expect(error.fieldViolations.map(\.field) == ["office.time_zone"])
    }
}

@Suite("Method catalog")
struct MethodCatalogTests {
    /// `rpc` lines in Protos/, as service/method names.
    static func declaredMethods() throws -> [String: Bool] {
        var methods: [String: Bool] = [:]
        let rpc = /^\s*rpc\s+(\w+)\s*\(\s*(\w+)\s*\)\s*returns\s*\(\s*(stream\s+)?(\w+)\s*\)/
        for file in try RepositoryPaths.protoFiles() {
            let text = try String(contentsOf: RepositoryPaths.protos.appendingPathComponent(file), encoding: .utf8)
            var service = ""
            for line in text.split(separator: "\n") {
                if line.hasPrefix("service ") {
                    service = "haven.v1." + line.dropFirst("service ".count).prefix { $0 != " " }
                }
                if let match = String(line).firstMatch(of: rpc) {
                    methods["\(service)/\(match.1)"] = match.3 != nil
                }
            }
        }
        return methods
    }

    @Test("lists exactly the methods declared in Protos/, with their kinds")
    func matchesSchema() throws {
        let declared = try Self.declaredMethods()
        #expect(declared.count == MethodCatalog.all.count)
        for method in MethodCatalog.all {
            #expect(declared[method.fullName] == (method.kind == .serverStreaming), "\(method.fullName)")
        }
    }

    @Test(
        "carries each method's idempotency_level: reads NO_SIDE_EFFECTS, keyed creates IDEMPOTENT, other writes neither"
    )
    func idempotency() {
        for method in MethodCatalog.all {
            let keyed = HavenFieldLimits.byMessage[method.requestType]?.values.contains { $0.name == "idempotency_key" }
            if keyed == true {
                #expect(method.idempotency == .idempotent, "\(method.fullName) carries an idempotency key")
            } else if method.method.hasPrefix("Get") || method.method.hasPrefix("List") {
                #expect(method.idempotency == .noSideEffects, "\(method.fullName) is a read")
            } else {
                #expect(method.idempotency != .idempotent, "\(method.fullName) is IDEMPOTENT without a key")
            }
        }
        #expect(MethodCatalog.SessionService.whoAmI.idempotency == .noSideEffects)
        #expect(MethodCatalog.FeedService.subscribe.idempotency == .noSideEffects)
        #expect(MethodCatalog.CaseService.updateCase.idempotency == .unknown, "compare-and-set: re-read, decide")
        #expect(MethodCatalog.ReferralService.revokeReferral.idempotency.isSafeToRetry == false)
    }

    @Test("has unique names and finds each by name; unknown names are not found")
    func lookup() {
        #expect(Set(MethodCatalog.all.map(\.fullName)).count == MethodCatalog.all.count)
        for method in MethodCatalog.all {
            #expect(MethodCatalog.method(named: method.fullName) == method)
        }
        #expect(MethodCatalog.method(named: "haven.v1.CaseService/DeleteCase") == nil)
        #expect(MethodCatalog.method(named: "") == nil)
    }

    @Test("types each method with its request and response")
    func types() {
        let open = MethodCatalog.CaseService.openCase
        #expect(open.fullName == "haven.v1.CaseService/OpenCase")
        #expect(open.info.requestType == "haven.v1.OpenCaseRequest")
        #expect(open.info.responseType == "haven.v1.Case")
        #expect(open.kind == .unary)
        let feed = MethodCatalog.FeedService.subscribe
        #expect(feed.kind == .serverStreaming)
        #expect(
            feed.info.description
                == "haven.v1.FeedService/Subscribe(haven.v1.SubscribeRequest) returns (stream haven.v1.FeedItem)"
        )
        #expect(
            Set(MethodCatalog.all.filter { $0.kind == .serverStreaming }.map(\.fullName))
                == [
                    feed.fullName, MethodCatalog.AuditService.verifyAuditChain.fullName,
                    MethodCatalog.OperationsService.createBackup.fullName,
                ]
        )
    }
}

@Suite("docs/PROTOCOL.md")
struct ProtocolDocumentTests {
    static func document() throws -> String {
        try String(contentsOf: RepositoryPaths.root.appendingPathComponent("docs/PROTOCOL.md"), encoding: .utf8)
    }

    @Test("lists every method of the catalog with its request and response")
    func everyMethod() throws {
        let document = try Self.document()
        for method in MethodCatalog.all {
            let request = method.requestType.dropFirst("haven.v1.".count)
            let response = method.responseType.dropFirst("haven.v1.".count)
            let stream = method.kind == .serverStreaming ? "stream " : ""
            #expect(
                document.contains("| `\(method.fullName)` | `\(request)` → `\(stream)\(response)` |"),
                "\(method.fullName) is missing from the method reference; run scripts/generate-protos.sh"
            )
        }
    }

    @Test("names every status code and every golden frame")
    func codesAndVectors() throws {
        let document = try Self.document()
        for code in StatusCode.allCases {
            #expect(document.contains("| \(code.rawValue) | \(code) |"), "\(code)")
        }
        let vectors = try FileManager.default.contentsOfDirectory(atPath: RepositoryPaths.goldenFrames.path)
            .filter { $0.hasSuffix(".textproto") }
        for vector in vectors {
            #expect(document.contains("`\(vector.dropLast(".textproto".count))`"), "\(vector)")
        }
    }

    @Test("shows the client-get-office test vector byte for byte")
    func hexExample() throws {
        let document = try Self.document()
        let hex = try String(
            contentsOf: RepositoryPaths.goldenFrames.appendingPathComponent("client-get-office.hex"),
            encoding: .utf8
        ).trimmingCharacters(in: .whitespacesAndNewlines)
        // The dump in section 3: rows of "0000  00 00 …".
        let dump = document.split(separator: "\n")
            .filter { $0.count > 6 && $0.prefix(4).allSatisfy(\.isHexDigit) && $0.dropFirst(4).hasPrefix("  ") }
            .map { $0.dropFirst(6).replacingOccurrences(of: " ", with: "") }
            .joined()
        #expect(dump == hex)
    }
}
