import HavenProtocol
import HavenStore

/// What a principal wants to do; each is one column of the policy table.
package enum Action: String, Sendable, Hashable, CaseIterable {
    /// Create, rename and close offices; register partner organisations;
    /// create, change, disable and enable accounts, issue enrolment codes and
    /// revoke certificates.
    case administer
    /// Read an office's public details (name, city, time zone).
    case readOffice
    /// Read an office's cases, survivors (pseudonymous), referrals, alerts and flags.
    case readRecords
    /// Open and change cases, register and change survivors, refer and revoke, acknowledge alerts.
    case writeRecords
    /// Open survivors' sealed identities (audited).
    case readIdentities
    /// Read an office's report (counts only).
    case readReports
    /// Read the directory of partner organisations.
    case readPartners
    /// Follow the change feed (what it shows is decided record by record).
    case followFeed
    /// Answer referrals addressed to the principal's own organisation.
    case actForPartner
    /// Record services delivered to a survivor whose referral the organisation accepted.
    case recordDeliveredService
    /// Erase survivors' identities (crypto-erasure; audited).
    case eraseRecords
    /// See what the retention job would erase (its dry run).
    case previewRetention
    /// Read, search and verify the audit trail; sign and export checkpoints.
    case readAudit
}

/// Over which records a role may take an action.
package enum Reach: Sendable, Hashable {
    /// Every record.
    case all
    /// Records of the offices the account works in.
    case ownOffices
    /// Records addressed to the account's own partner organisation.
    case ownPartner
}

/// The one place that decides who sees or changes what.
///
/// Every read, list, feed (live and replayed), idempotent replay, report and
/// write asks here; no handler has a role switch of its own. Decisions come
/// in two layers:
///
/// 1. ``table``: which actions a role may take, over which reach — the table
///    `docs/SECURITY.md` prints, and the access-grid test checks against a
///    copy written independently.
/// 2. Record-level rules (`AccessPolicy+Records.swift`): whether one record is
///    visible to a principal *now* — current referrals and consents, never
///    the ones a stored snapshot carried — and what a partner sees of it.
///
/// A record the principal may not see answers NOT_FOUND, exactly as a
/// record that does not exist, so ids of other offices' records cannot be probed.
package struct AccessPolicy: Sendable {
    package init() {}

    /// Role → action → reach. An action missing from a role's row is denied.
    package static let table: [Haven_V1_Role: [Action: Reach]] = [
        .admin: [
            .administer: .all, .readOffice: .all, .readPartners: .all, .readReports: .all, .followFeed: .all,
            .previewRetention: .all,
        ],
        .director: [
            .readOffice: .ownOffices, .readRecords: .ownOffices, .writeRecords: .ownOffices,
            .readIdentities: .ownOffices, .readReports: .ownOffices, .readPartners: .all, .followFeed: .all,
            .eraseRecords: .ownOffices, .previewRetention: .ownOffices,
        ],
        .caseworker: [
            .readOffice: .ownOffices, .readRecords: .ownOffices, .writeRecords: .ownOffices,
            .readIdentities: .ownOffices, .readPartners: .all, .followFeed: .all,
        ],
        .partner: [
            .actForPartner: .ownPartner, .recordDeliveredService: .ownPartner, .followFeed: .all,
        ],
        // The auditor reads the audit trail, never a record or an identity.
        .auditor: [.readAudit: .all],
    ]

    /// How far `principal` may take `action`, or nil when not at all.
    package func reach(_ principal: Principal, _ action: Action) -> Reach? {
        Self.table[principal.role]?[action]
    }

    /// Whether `principal` may take `action` on something of `office` (office
    /// actions) or at all (actions without an office).
    package func allows(_ principal: Principal, _ action: Action, office: String? = nil) -> Bool {
        switch self.reach(principal, action) {
        case nil: false
        case .all: true
        case .ownOffices: office.map { principal.account.officeCodes.contains($0) } ?? false
        case .ownPartner: false
        }
    }

    /// Whether `principal` may act for partner organisation `partnerID`.
    package func allows(_ principal: Principal, _ action: Action, partner partnerID: String) -> Bool {
        guard self.reach(principal, action) == .ownPartner else { return false }
        return !principal.account.partnerID.isEmpty && principal.account.partnerID == partnerID
    }

    /// Throws PERMISSION_DENIED unless `principal` may take `action` (on `office`).
    package func check(_ principal: Principal, _ action: Action, office: String? = nil) throws(HavenError) {
        guard self.allows(principal, action, office: office) else { throw Self.denied(principal) }
    }

    /// The offices a list or feed may cover for `principal` and `action`: those
    /// asked for (each must be allowed, PERMISSION_DENIED otherwise), or every
    /// office the principal works in. Nil means "every office" (reach `.all`).
    package func offices(
        _ principal: Principal,
        _ action: Action,
        asked: [String]
    ) throws(HavenError) -> [String]? {
        switch self.reach(principal, action) {
        case .all:
            return asked.isEmpty ? nil : asked
        case .ownOffices:
            if asked.isEmpty {
                guard !principal.account.officeCodes.isEmpty else { throw Self.denied(principal) }
                return principal.account.officeCodes
            }
            for code in asked where !principal.account.officeCodes.contains(code) {
                throw HavenError(code: .permissionDenied, message: "office \(code.prefix(8)) is not one of yours")
            }
            return asked
        case .ownPartner, nil:
            throw Self.denied(principal)
        }
    }

    static func denied(_ principal: Principal) -> HavenError {
        HavenError(code: .permissionDenied, message: "\(principal.role.name) may not do this")
    }

    /// NOT_FOUND for a record the caller may not see, worded as for one that does not exist.
    package static func notFound(_ what: String) -> HavenError {
        HavenError(code: .notFound, message: "no \(what) with that id")
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

extension AccessPolicy {
    /// Requires the principal's account, as stored now, to be enabled and the
    /// same (role, offices, partner) as when its connection was authenticated.
    /// The record writer asks this inside every write transaction, so a write
    /// can never commit after the change that disabled or narrowed its account.
    ///
    /// - Throws: UNAUTHENTICATED when the account was disabled, removed or changed.
    package func requireCurrent(_ principal: Principal, _ tx: any StoreReader) throws {
        guard let account = try tx.account(id: principal.id), principal.isCurrent(account) else {
            throw HavenError(
                code: .unauthenticated,
                message: "this connection's account was disabled or changed; reconnect"
            )
        }
        if let organisation = Self.organisation(of: account),
            try tx.load(Haven_V1_PartnerOrganisation.self, id: organisation)?.active == false
        {
            throw HavenError(code: .unauthenticated, message: "partner organisation deactivated")
        }
    }
}

extension AccessPolicy {
    /// Whether accounts of `role` work in offices: some action of theirs
    /// reaches their own offices (directors, caseworkers). Derived from the
    /// table, so the shape of an account follows the policy.
    package static func worksInOffices(_ role: Haven_V1_Role) -> Bool {
        Self.table[role]?.values.contains(.ownOffices) ?? false
    }

    /// Whether accounts of `role` act for a partner organisation: some action
    /// of theirs reaches their own partner (partners).
    package static func actsForOrganisation(_ role: Haven_V1_Role) -> Bool {
        Self.table[role]?.values.contains(.ownPartner) ?? false
    }

    /// The organisation whose being active an account's access depends on
    /// (nil for staff): handshakes, the session watch and every write ask this.
    package static func organisation(of account: Account) -> String? {
        Self.actsForOrganisation(account.role) && !account.partnerID.isEmpty ? account.partnerID : nil
    }
}
