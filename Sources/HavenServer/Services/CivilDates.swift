import Foundation
import HavenProtocol

/// Calendar dates in an office's time zone.
package enum CivilDates {
    /// The date of an instant in a time zone (UTC when the zone is unknown).
    package static func date(unixMs: Int64, timeZone identifier: String) -> Haven_V1_CivilDate {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: identifier) ?? TimeZone(identifier: "UTC")!
        let components = calendar.dateComponents(
            [.year, .month, .day],
            from: Date(timeIntervalSince1970: Double(unixMs) / 1000)
        )
        var date = Haven_V1_CivilDate()
        date.year = Int32(components.year!)
        date.month = Int32(components.month!)
        date.day = Int32(components.day!)
        return date
    }

    /// Whether `a` is on or before `b`.
    package static func onOrBefore(_ a: Haven_V1_CivilDate, _ b: Haven_V1_CivilDate) -> Bool {
        (a.year, a.month, a.day) <= (b.year, b.month, b.day)
    }
}
