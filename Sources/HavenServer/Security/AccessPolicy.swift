import HavenProtocol
import HavenStore

/// What a call wants to do, and to which office's or partner's records.
package enum Access: Sendable, Hashable {
    /// Create, rename, close offices; register partners.
    case administer
    /// Read an office's public details.
    case readOffice(String)
    /// Read cases and survivors' records (pseudonymous) of an office.
    case readOfficeRecords(String)
    /// Open and change cases, register and change survivors, refer and revoke.
    case writeOfficeRecords(String)
    /// Read survivors' identities in an office (audited).
    case readIdentities(String)
    /// Answer referrals addressed to a partner (accept, decline, complete).
    case actForPartner(String)
    /// Read partner organisations.
    case readPartners
    /// Read an office's reports (counts only).
    case readReports(String)
    /// Follow the change feed.
    case followFeed
}

/// The one place that decides whether a principal may do something.
///
/// Every handler asks here before touching records; object-level checks
/// (this case, this survivor) go through the office or partner the record
/// belongs to, so no handler can forget them. Roles:
/// - admin: offices and partners; no cases, survivors or identities;
/// - director, caseworker: everything in their offices, identities included;
/// - partner: referrals addressed to it, and what consent shares (checked by
///   the survivor service, field by field);
/// - auditor: nothing here (the audit log has its own service).
package struct AccessPolicy: Sendable {
    package init() {}

    /// Whether `principal` may do `access`.
    package func allows(_ principal: Principal, _ access: Access) -> Bool {
        let account = principal.account
        switch (account.role, access) {
        case (.admin, .administer), (.admin, .readOffice), (.admin, .readPartners), (.admin, .readReports),
            (.admin, .followFeed):
            return true
        case (.director, .readOffice(let office)), (.caseworker, .readOffice(let office)),
            (.director, .readOfficeRecords(let office)), (.caseworker, .readOfficeRecords(let office)),
            (.director, .writeOfficeRecords(let office)), (.caseworker, .writeOfficeRecords(let office)),
            (.director, .readIdentities(let office)), (.caseworker, .readIdentities(let office)),
            (.director, .readReports(let office)):
            return account.officeCodes.contains(office)
        case (.director, .readPartners), (.caseworker, .readPartners), (.director, .followFeed),
            (.caseworker, .followFeed), (.partner, .followFeed):
            return true
        case (.partner, .actForPartner(let partner)):
            return !account.partnerID.isEmpty && account.partnerID == partner
        default:
            return false
        }
    }

    /// Throws PERMISSION_DENIED unless `principal` may do `access`.
    package func check(_ principal: Principal, _ access: Access) throws(HavenError) {
        guard self.allows(principal, access) else {
            throw HavenError(code: .permissionDenied, message: "\(principal.role.name) may not do this here")
        }
    }

    /// For a specific record: throws NOT_FOUND (not PERMISSION_DENIED) when
    /// the principal may not see it, so ids of other offices' records cannot
    /// be probed.
    package func checkVisible(_ principal: Principal, _ access: Access, what: String) throws(HavenError) {
        guard self.allows(principal, access) else {
            throw HavenError(code: .notFound, message: "no \(what) with that id")
        }
    }
}

extension Haven_V1_Role {
    /// The role's name in messages.
    package var name: String {
        switch self {
        case .admin: "admin"
        case .director: "director"
        case .caseworker: "caseworker"
        case .partner: "partner"
        case .auditor: "auditor"
        case .unspecified, .UNRECOGNIZED: "unknown role"
        }
    }
}
