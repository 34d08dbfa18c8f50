import Foundation
import HavenProtocol
import Testing

@testable import HavenServer

/// The request checks that replaced Foundation calls with arithmetic and
/// scalar tests answer exactly what those calls answered.
@Suite("Validate")
struct ValidateTests {
    /// What `Validate.date` used to ask: a Gregorian calendar in UTC.
    static func foundationSays(year: Int32, month: Int32, day: Int32) -> Bool {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        var components = DateComponents()
        components.year = Int(year)
        components.month = Int(month)
        components.day = Int(day)
        return (1...9999).contains(year) && (1...12).contains(month) && day >= 1
            && calendar.date(from: components).map { calendar.component(.day, from: $0) == Int(day) } == true
    }

    @Test(
        "a date is valid exactly when Foundation's Gregorian calendar says so: every February, and every month of sampled years"
    )
    func datesAgreeWithFoundation() {
        var checked = 0
        var disagreements: [String] = []
        func check(_ year: Int32, _ month: Int32, _ day: Int32) {
            checked += 1
            if Validate.isCivilDate(year: year, month: month, day: day)
                != Self.foundationSays(year: year, month: month, day: day)
            {
                disagreements.append("\(year)-\(month)-\(day)")
            }
        }
        // Leap years, Julian and Gregorian, over the whole range.
        for year in Int32(1)...9999 {
            for day in Int32(28)...30 { check(year, 2, day) }
        }
        // Every day of every month (and the days either side) in years around each rule.
        let years: [Int32] = [1, 4, 100, 400, 1500, 1581, 1582, 1583, 1600, 1700, 1900, 2000, 2024, 2026, 2100, 9999]
        for year in years + stride(from: 3, through: 9999, by: 397).map(Int32.init) {
            for month in Int32(0)...13 {
                for day in Int32(-1)...32 { check(year, month, day) }
            }
        }
        // Out of range.
        for (year, month, day) in [(0, 1, 1), (10_000, 1, 1), (-1, 1, 1), (2026, 1, Int32.max)]
            as [(Int32, Int32, Int32)]
        {
            check(year, month, day)
        }
        #expect(checked > 40_000)
        #expect(disagreements.isEmpty, "\(disagreements.prefix(20))")
        // The change of calendar, spelled out.
        #expect(Validate.isCivilDate(year: 1582, month: 10, day: 4))
        #expect(!Validate.isCivilDate(year: 1582, month: 10, day: 10))
        #expect(Validate.isCivilDate(year: 1582, month: 10, day: 15))
        #expect(Validate.isCivilDate(year: 1500, month: 2, day: 29))  // a Julian leap year
        #expect(!Validate.isCivilDate(year: 1900, month: 2, day: 29))
        #expect(Validate.isCivilDate(year: 2000, month: 2, day: 29))
    }

    @Test("a required text is blank exactly when trimming spaces and tabs leaves nothing")
    func blankAgreesWithTrimming() {
        let samples = [
            "", " ", "\t", " \t ", "\u{00A0}", "\u{2003}\u{3000}", "\n", " \n ", "\r", "a", " a ", "\ta",
            "\u{200B}", "\u{FEFF}", "é", " \u{301}", "Fictional lane", "\u{1680}", "\u{205F}x",
        ]
        for sample in samples {
            #expect(
                Validate.isBlank(sample) == sample.trimmingCharacters(in: .whitespaces).isEmpty,
                "\(sample.unicodeScalars.map { String($0.value, radix: 16) })"
            )
        }
        #expect(throws: HavenError.self) { try Validate.text(" \t", "event.rescue_operation.place") }
        #expect(throws: Never.self) { try Validate.text(" \t", "event.rescue_operation.led_by", required: false) }
        #expect(throws: Never.self) { try Validate.text("Fictional lane", "event.rescue_operation.place") }
    }

    @Test("an optional enum field: unset is nil, a named value is itself, a number the schema does not name is refused")
    func optionalEnum() throws {
        #expect(try Validate.optional(Haven_V1_Role.unspecified, "role") == nil)
        #expect(try Validate.optional(Haven_V1_Role.director, "role") == .director)
        let unknown = try #require(Haven_V1_Role(rawValue: 97))
        #expect(throws: HavenError.invalidField("role", "required")) { try Validate.optional(unknown, "role") }
    }
}
