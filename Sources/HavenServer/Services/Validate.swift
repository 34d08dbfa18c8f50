import Foundation
import HavenProtocol

/// Checks of request fields. Every failure is INVALID_ARGUMENT with a
/// `FieldViolation` naming the field, never echoing its value.
package enum Validate {
    /// The most people one rescue operation may record (documented in case.proto).
    package static let maxPeopleRescued: UInt32 = 100_000

    package static func require(_ condition: Bool, _ field: String, _ problem: String) throws(HavenError) {
        if !condition { throw HavenError.invalidField(field, problem) }
    }

    /// A text field that must not be blank when required. Its size is
    /// checked before the handler runs, against ``HavenFieldLimits``.
    package static func text(_ value: String, _ field: String, required: Bool = true) throws(HavenError) {
        if required { try require(!isBlank(value), field, "required") }
    }

    /// Whether `value` is empty or only `CharacterSet.whitespaces` (spaces
    /// and tabs): what `trimmingCharacters(in: .whitespaces).isEmpty` says,
    /// without bridging the string through `NSString` (6 % of a handler's
    /// CPU on every append). Stops at the first other scalar.
    package static func isBlank(_ value: String) -> Bool {
        value.unicodeScalars.allSatisfy { CharacterSet.whitespaces.contains($0) }
    }

    package static func identifier(_ value: String, _ field: String) throws(HavenError) {
        try require(!value.isEmpty, field, "required")
        try require(
            value.utf8.count <= 64 && value.allSatisfy { $0.isASCII && !$0.isWhitespace },
            field,
            "not a valid identifier"
        )
    }

    package static func idempotencyKey(_ value: String) throws(HavenError) {
        try require(!value.isEmpty, "idempotency_key", "required (a random UUID is ideal)")
    }

    package static func officeCode(_ value: String, _ field: String) throws(HavenError) {
        try require(
            (2...8).contains(value.count) && value.allSatisfy { $0.isASCII && $0.isUppercase && $0.isLetter },
            field,
            "must be 2 to 8 upper-case letters"
        )
    }

    package static func country(_ value: String, _ field: String) throws(HavenError) {
        try require(Self.countries.contains(value), field, "must be an ISO 3166-1 alpha-2 country code (IN, PH, …)")
    }

    /// The 249 officially assigned ISO 3166-1 alpha-2 codes.
    static let countries: Set<String> = [
        "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ", "BA", "BB",
        "BD", "BE",
        "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS", "BT", "BV", "BW", "BY", "BZ", "CA",
        "CC", "CD",
        "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ",
        "DK", "DM",
        "DO", "DZ", "EC", "EE", "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD",
        "GE", "GF",
        "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM", "HN", "HR",
        "HT", "HU",
        "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM", "JO", "JP", "KE", "KG", "KH", "KI",
        "KM", "KN",
        "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC",
        "MD", "ME",
        "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY",
        "MZ", "NA",
        "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG", "PH", "PK",
        "PL", "PM",
        "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW", "SA", "SB", "SC", "SD", "SE", "SG",
        "SH", "SI",
        "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS", "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH",
        "TJ", "TK",
        "TL", "TM", "TN", "TO", "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE",
        "VG", "VI",
        "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
    ]

    package static func timeZone(_ value: String, _ field: String) throws(HavenError) {
        try require(!value.isEmpty && TimeZone(identifier: value) != nil, field, "not an IANA time zone")
    }

    package static func date(_ value: Haven_V1_CivilDate, _ field: String, required: Bool = true) throws(HavenError) {
        if !required && value == Haven_V1_CivilDate() { return }
        let valid = isCivilDate(year: value.year, month: value.month, day: value.day)
        try require(valid, field, required && value == Haven_V1_CivilDate() ? "required" : "not a valid date")
    }

    /// Whether a year (1–9999), month and day name a day of Foundation's
    /// Gregorian calendar, as a `Calendar(identifier: .gregorian)` in UTC
    /// answers it (`ValidateTests` compares the two over every February of
    /// the range and every day of every month of sampled years): the Julian
    /// calendar's leap years before 15 October 1582, and the ten days that
    /// the change of calendar skipped (5–14 October 1582) not days at all.
    /// Arithmetic rather than a `Calendar` and a `TimeZone` made for every
    /// date checked (5 % of a handler's CPU on every append).
    package static func isCivilDate(year: Int32, month: Int32, day: Int32) -> Bool {
        guard (1...9999).contains(year), (1...12).contains(month), day >= 1 else { return false }
        let julian = (year, month, day) < (1582, 10, 15)
        if year == 1582 && month == 10 && (5...14).contains(day) { return false }
        let leap = julian ? year % 4 == 0 : (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        let days: Int32 =
            switch month {
            case 2: leap ? 29 : 28
            case 4, 6, 9, 11: 30
            default: 31
            }
        return day <= days
    }

    package static func known<E: SwiftProtobufEnum>(_ value: E, _ field: String) throws(HavenError) {
        try require(
            value.rawValue != 0 && E(rawValue: value.rawValue) != nil && !value.isUnrecognized,
            field,
            "required"
        )
    }

    /// An enum field that may be left unset (a list's filter, say): nil when
    /// it is (the wire's 0), else the value, which must be one the schema
    /// names (INVALID_ARGUMENT otherwise, as ``known(_:_:)``).
    package static func optional<E: SwiftProtobufEnum>(_ value: E, _ field: String) throws(HavenError) -> E? {
        guard value.rawValue != 0 else { return nil }
        try self.known(value, field)
        return value
    }
}

/// What `Validate.known` needs of a generated enum.
package protocol SwiftProtobufEnum: RawRepresentable where RawValue == Int {
    var isUnrecognized: Bool { get }
}

extension Haven_V1_CaseCategory: SwiftProtobufEnum {
    package var isUnrecognized: Bool { if case .UNRECOGNIZED = self { true } else { false } }
}
extension Haven_V1_CaseStatus: SwiftProtobufEnum {
    package var isUnrecognized: Bool { if case .UNRECOGNIZED = self { true } else { false } }
}
extension Haven_V1_AccusedRole: SwiftProtobufEnum {
    package var isUnrecognized: Bool { if case .UNRECOGNIZED = self { true } else { false } }
}
extension Haven_V1_ServiceKind: SwiftProtobufEnum {
    package var isUnrecognized: Bool { if case .UNRECOGNIZED = self { true } else { false } }
}
extension Haven_V1_SurvivorStatus: SwiftProtobufEnum {
    package var isUnrecognized: Bool { if case .UNRECOGNIZED = self { true } else { false } }
}
extension Haven_V1_PartnerKind: SwiftProtobufEnum {
    package var isUnrecognized: Bool { if case .UNRECOGNIZED = self { true } else { false } }
}
extension Haven_V1_ConsentGiver: SwiftProtobufEnum {
    package var isUnrecognized: Bool { if case .UNRECOGNIZED = self { true } else { false } }
}
extension Haven_V1_ConsentScope: SwiftProtobufEnum {
    package var isUnrecognized: Bool { if case .UNRECOGNIZED = self { true } else { false } }
}
extension Haven_V1_Role: SwiftProtobufEnum {
    package var isUnrecognized: Bool { if case .UNRECOGNIZED = self { true } else { false } }
}
