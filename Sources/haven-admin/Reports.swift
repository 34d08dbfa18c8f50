import ArgumentParser
import Foundation
import HavenClient
import HavenProtocol
import HavenServer
import SwiftProtobuf

/// An office's report: counts only.
struct Reports: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reports",
        abstract: "Shows an office's report for a period (counts only) as a table, CSV or JSON.",
        discussion: """
            Admins may report on every office, directors on theirs. CSV cells that a
            spreadsheet would run as a formula (=, +, -, @) are prefixed with an apostrophe.
            """
    )
    @OptionGroup var server: ServerOptions
    @Option(help: "Office code.") var office: String
    @Option(help: ArgumentHelp("First day, YYYY-MM-DD.", valueName: "date")) var from: String
    @Option(help: ArgumentHelp("Last day, YYYY-MM-DD (inclusive).", valueName: "date")) var to: String
    @Flag(help: "Print CSV (figure,value) for spreadsheets.") var csv = false

    static func date(_ text: String, _ flag: String) throws -> Haven_V1_CivilDate {
        let parts = text.split(separator: "-").compactMap { Int32($0) }
        guard parts.count == 3 else { throw ValidationError("--\(flag) must be YYYY-MM-DD") }
        return Haven_V1_CivilDate.with {
            $0.year = parts[0]
            $0.month = parts[1]
            $0.day = parts[2]
        }
    }

    func validate() throws {
        _ = try Self.date(self.from, "from")
        _ = try Self.date(self.to, "to")
        guard !(self.csv && self.server.json) else { throw ValidationError("choose one of --csv and --json") }
    }

    /// The report as (figure, value) rows.
    static func rows(_ report: Haven_V1_OfficeReport) -> [(String, String)] {
        func day(_ date: Haven_V1_CivilDate) -> String {
            String(format: "%04d-%02d-%02d", date.year, date.month, date.day)
        }
        var rows: [(String, String)] = [
            ("office", report.officeCode),
            ("period", "\(day(report.period.firstDay)) to \(day(report.period.lastDay))"),
            ("cases opened", "\(report.casesOpened)"), ("cases closed", "\(report.casesClosed)"),
            ("rescue operations", "\(report.rescueOperations)"), ("people rescued", "\(report.peopleRescued)"),
            ("of whom minors", "\(report.minorsRescued)"), ("convictions", "\(report.convictions)"),
            ("acquittals", "\(report.acquittals)"), ("accused on bail", "\(report.accusedOnBail)"),
            ("survivors registered", "\(report.survivorsRegistered)"),
            ("survivors in aftercare", "\(report.survivorsInAftercare)"),
        ]
        for count in report.casesByStatus {
            rows.append(("cases \(Self.name(of: count.status))", "\(count.count)"))
        }
        for service in report.servicesDelivered {
            rows.append(
                ("services: \(Self.name(of: service.kind))", "\(service.count) to \(service.survivors) survivors")
            )
        }
        return rows
    }

    /// `CASE_STATUS_IN_COURT` → `in court`.
    static func name(of value: some SwiftProtobufEnumNamed) -> String { value.readableName }

    func run() async throws {
        try await withAdminClient(self.server) { client in
            var request = Haven_V1_GetOfficeReportRequest()
            request.officeCode = self.office
            request.period.firstDay = try Self.date(self.from, "from")
            request.period.lastDay = try Self.date(self.to, "to")
            let report = try await client.reports.officeReport(request)
            if self.server.json { return try self.server.print(report) }
            let rows = Self.rows(report)
            if self.csv {
                say(CSV.line(["figure", "value"]))
                for (figure, value) in rows { say(CSV.line([figure, value])) }
            } else {
                CLI.table(["FIGURE", "VALUE"], rows.map { [$0.0, $0.1] })
            }
        }
    }
}

/// Generated enums named for people.
protocol SwiftProtobufEnumNamed {
    var readableName: String { get }
}

extension SwiftProtobufEnumNamed where Self: CustomStringConvertible {
    var readableName: String { "\(self)" }
}

extension Haven_V1_CaseStatus: SwiftProtobufEnumNamed {
    var readableName: String { Reports.words("\(self)") }
}

extension Haven_V1_ServiceKind: SwiftProtobufEnumNamed {
    var readableName: String { Reports.words("\(self)") }
}

extension Reports {
    /// `inCourt` → `in court`.
    static func words(_ camel: String) -> String {
        camel.reduce(into: "") { text, character in
            if character.isUppercase {
                text += " " + character.lowercased()
            } else {
                text.append(character)
            }
        }
    }
}
