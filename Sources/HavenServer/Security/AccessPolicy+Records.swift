import HavenProtocol
import HavenStore

/// Record-level rules: whether one record is visible to a principal now, and
/// what of it.
///
/// Every rule reads the *current* referrals and consents from the
/// transaction, never the ones a stored snapshot carried: a feed replayed
/// from the beginning, or an idempotent create replayed long after, shows
/// history as the principal may see it today.
///
/// The rules do the same work whether the record exists or not (the caller
/// passes the id it looked up), so NOT_FOUND for "exists but not yours" and
/// "does not exist" cost the same queries.
extension AccessPolicy {
    /// Any stored record as `principal` may see it now, or nil.
    package func view<R: StoredRecord>(
        _ record: R,
        for principal: Principal,
        in tx: any StoreReader,
        now: Int64
    ) throws -> R? {
        switch record {
        case let survivor as Haven_V1_Survivor:
            return try self.survivor(survivor, id: survivor.id, for: principal, in: tx, now: now) as? R
        case let record as Haven_V1_Case:
            return self.caseRecord(record, for: principal) as? R
        case let referral as Haven_V1_Referral:
            return try self.referral(referral, id: referral.id, for: principal, in: tx) as? R
        case let alert as Haven_V1_Alert:
            return self.alert(alert, for: principal) as? R
        case let office as Haven_V1_Office:
            return self.office(office, code: office.code, for: principal) as? R
        case let partner as Haven_V1_PartnerOrganisation:
            return self.partner(partner, id: partner.id, for: principal) as? R
        default:
            return nil
        }
    }

    /// A survivor as `principal` may see it now: the whole record for staff of
    /// its office; for a partner with a live referral, the pseudonymous view
    /// cut to the scopes of the consents in force *now* (read from the stored
    /// survivor, not from `snapshot`); nil otherwise.
    ///
    /// - Parameters:
    ///   - snapshot: The record to show (a feed snapshot, or the current one),
    ///     or nil when the id does not exist.
    ///   - id: The id looked up (used even when `snapshot` is nil, so both
    ///     outcomes run the same queries).
    package func survivor(
        _ snapshot: Haven_V1_Survivor?,
        id: String,
        for principal: Principal,
        in tx: any StoreReader,
        now: Int64,
        current: Haven_V1_Survivor? = nil
    ) throws -> Haven_V1_Survivor? {
        switch self.reach(principal, .readRecords) {
        case .all:
            return snapshot
        case .ownOffices:
            guard let snapshot, principal.account.officeCodes.contains(snapshot.officeCode) else { return nil }
            return snapshot
        case .ownPartner, nil:
            break
        }
        // Partners: only through a referral that is live now.
        let partnerID = principal.account.partnerID
        guard self.reach(principal, .actForPartner) == .ownPartner else { return nil }
        let live = try ConsentView.hasLiveReferral(id, partnerID: partnerID, tx)
        guard let snapshot, live else { return nil }
        let consents =
            try current?.consents ?? tx.load(Haven_V1_Survivor.self, id: snapshot.id)?.consents ?? []
        return ConsentView.partnerView(of: snapshot, consents: consents, partnerID: partnerID, now: now)
    }

    /// Whether `principal` may page through a survivor's services
    /// (`ListSurvivorServices`): nil when the survivor is not visible to
    /// them (or missing); true for staff who see it; for a partner that sees
    /// it, whether a consent in force now has the SERVICES scope.
    package func survivorServices(
        _ survivor: Haven_V1_Survivor?,
        id: String,
        for principal: Principal,
        in tx: any StoreReader,
        now: Int64
    ) throws -> Bool? {
        guard let view = try self.survivor(survivor, id: id, for: principal, in: tx, now: now, current: survivor)
        else { return nil }
        guard self.reach(principal, .readRecords) == nil else { return true }
        return ConsentView.scopes(view.consents, partnerID: principal.account.partnerID, now: now).contains(.services)
    }

    /// A case for staff of its office; nobody else.
    package func caseRecord(_ record: Haven_V1_Case?, for principal: Principal) -> Haven_V1_Case? {
        guard let record, self.allows(principal, .readRecords, office: record.officeCode) else { return nil }
        return record
    }

    /// An alert for staff of its office; nobody else (partners never see flags or alerts).
    package func alert(_ alert: Haven_V1_Alert?, for principal: Principal) -> Haven_V1_Alert? {
        guard let alert, self.allows(principal, .readRecords, office: alert.officeCode) else { return nil }
        return alert
    }

    /// A referral: whole for staff of its office; for the partner it is
    /// addressed to, whole while it is not revoked *now*, and identifiers only
    /// once it is (its note, resolution and referrer are the office's words
    /// for a partner it no longer trusts with them).
    package func referral(
        _ referral: Haven_V1_Referral?,
        id: String,
        for principal: Principal,
        in tx: any StoreReader,
        current: Haven_V1_Referral? = nil
    ) throws -> Haven_V1_Referral? {
        if let referral, self.allows(principal, .readRecords, office: referral.officeCode) { return referral }
        guard self.reach(principal, .actForPartner) == .ownPartner else { return nil }
        // Same queries whether it exists or not.
        let now = try current ?? tx.load(Haven_V1_Referral.self, id: id)
        guard let referral, let now, self.allows(principal, .actForPartner, partner: referral.partnerID) else {
            return nil
        }
        return now.status == .revoked ? Self.identifiersOnly(referral) : referral
    }

    /// What a partner keeps of a revoked referral: who, which survivor code, which state.
    static func identifiersOnly(_ referral: Haven_V1_Referral) -> Haven_V1_Referral {
        var view = Haven_V1_Referral()
        view.id = referral.id
        view.survivorID = referral.survivorID
        view.survivorCode = referral.survivorCode
        view.partnerID = referral.partnerID
        view.status = referral.status
        view.version = referral.version
        view.createdAtUnixMs = referral.createdAtUnixMs
        view.updatedAtUnixMs = referral.updatedAtUnixMs
        return view
    }

    /// An office: for those who may read it.
    package func office(_ office: Haven_V1_Office?, code: String, for principal: Principal) -> Haven_V1_Office? {
        guard let office, self.allows(principal, .readOffice, office: code) else { return nil }
        return office
    }

    /// A partner organisation: for those who read the directory, and for the organisation's own accounts.
    package func partner(
        _ partner: Haven_V1_PartnerOrganisation?,
        id: String,
        for principal: Principal
    ) -> Haven_V1_PartnerOrganisation? {
        guard self.allows(principal, .readPartners) || self.allows(principal, .actForPartner, partner: id) else {
            return nil
        }
        return partner
    }

    /// Whether `principal` sees survivors' flags (and may filter on them).
    package func seesFlags(_ principal: Principal) -> Bool {
        self.reach(principal, .readRecords) != nil
    }

    /// A change-log entry as `principal` may see it now, or nil: the snapshot
    /// it carries goes through the same record rules as a direct read, with
    /// today's referrals and consents. A partner's items carry no office code.
    package func change(
        _ entry: ChangeEntry,
        for principal: Principal,
        in tx: any StoreReader,
        now: Int64
    ) throws -> Haven_V1_ChangeEvent? {
        guard self.allows(principal, .followFeed) else { return nil }
        var event = entry.event
        switch event.subject {
        case .office(let office):
            guard let view = self.office(office, code: office.code, for: principal) else { return nil }
            event.office = view
        case .caseRecord(let record):
            guard let view = self.caseRecord(record, for: principal) else { return nil }
            event.caseRecord = view
        case .survivor(let survivor):
            guard let view = try self.survivor(survivor, id: survivor.id, for: principal, in: tx, now: now) else {
                return nil
            }
            event.survivor = view
        case .partner(let partner):
            guard let view = self.partner(partner, id: partner.id, for: principal) else { return nil }
            event.partner = view
        case .referral(let referral):
            guard let view = try self.referral(referral, id: referral.id, for: principal, in: tx) else { return nil }
            event.referral = event.kind == .accessRevoked ? Self.identifiersOnly(view) : view
        case .alert(let alert):
            guard let view = self.alert(alert, for: principal) else { return nil }
            event.alert = view
        case .none:
            return nil
        }
        if self.reach(principal, .readRecords) == nil && self.reach(principal, .readOffice) == nil {
            event.officeCode = ""
        }
        return event
    }
}
