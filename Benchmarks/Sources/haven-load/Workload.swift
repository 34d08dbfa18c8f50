import Foundation
import HavenClient
import HavenProtocol
import SwiftProtobuf

/// Weights of the kinds of call.
struct Mix: Sendable {
    var read = 0
    var append = 0
    var register = 0

    init(_ text: String) throws {
        for part in text.split(separator: ",") {
            let pair = part.split(separator: "=")
            guard pair.count == 2, let weight = Int(pair[1]), weight >= 0 else {
                throw HavenError(
                    code: .invalidArgument,
                    message: "--mix: expected name=weight, got \(part)",
                    source: .client
                )
            }
            switch pair[0] {
            case "read": self.read = weight
            case "append": self.append = weight
            case "register": self.register = weight
            default:
                throw HavenError(
                    code: .invalidArgument,
                    message: "--mix: unknown call kind \(pair[0])",
                    source: .client
                )
            }
        }
        guard self.read + self.append + self.register > 0 else {
            throw HavenError(code: .invalidArgument, message: "--mix: weights add up to 0", source: .client)
        }
    }
}

/// Records the load reads and appends to.
struct Seeds: Sendable {
    var cases: [String]
    var survivors: [String]

    /// Creates (or finds again: the keys are fixed) `count` cases and survivors.
    static func make(_ client: HavenClient, office: String, count: Int) async throws -> Seeds {
        var seeds = Seeds(cases: [], survivors: [])
        for index in 0..<count {
            var open = Haven_V1_OpenCaseRequest()
            open.officeCode = office
            open.category = .forcedLabour
            open.title = "haven-load seed case \(index)"
            open.idempotencyKey = "haven-load-seed-case-\(office)-\(index)"
            seeds.cases.append(try await client.cases.open(open).id)
            seeds.survivors.append(
                try await client.survivors.register(
                    Workload.survivor(office, key: "haven-load-seed-survivor-\(office)-\(index)")
                ).id
            )
        }
        return seeds
    }
}

/// One call of the mix.
struct Workload: Sendable {
    let mix: Mix
    let seeds: Seeds
    let office: String

    static func survivor(_ office: String, key: String) -> Haven_V1_RegisterSurvivorRequest {
        var request = Haven_V1_RegisterSurvivorRequest()
        request.officeCode = office
        request.ageAtIntake = 16
        request.intakeOn.year = 2026
        request.intakeOn.month = 3
        request.intakeOn.day = 14
        request.identity.legalName = "Load Test Person (fictional)"
        request.idempotencyKey = key
        return request
    }

    func call(_ client: HavenClient, using random: inout SystemRandomNumberGenerator) async throws {
        let roll = Int.random(in: 0..<(self.mix.read + self.mix.append + self.mix.register), using: &random)
        if roll < self.mix.read {
            if Bool.random(using: &random) {
                let id = self.seeds.cases.randomElement(using: &random)!
                _ = try await client.cases.get(.with { $0.caseID = id })
            } else {
                let id = self.seeds.survivors.randomElement(using: &random)!
                _ = try await client.survivors.get(.with { $0.survivorID = id })
            }
        } else if roll < self.mix.read + self.mix.append {
            var append = Haven_V1_AppendCaseEventRequest()
            append.caseID = self.seeds.cases.randomElement(using: &random)!
            append.event.occurredOn.year = 2026
            append.event.occurredOn.month = 4
            append.event.occurredOn.day = 2
            append.event.note.text = "haven-load note (fictional)"
            _ = try await client.cases.appendEvent(append)
        } else {
            _ = try await client.survivors.register(Self.survivor(self.office, key: ""))
        }
    }
}
