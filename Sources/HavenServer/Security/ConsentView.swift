import HavenProtocol
import HavenStore

/// What a partner organisation may see of a survivor: the pseudonymous record
/// while a referral to it is live, and identity fields only as far as a
/// consent in force covers them.
package enum ConsentView {
    /// Referral statuses under which the partner sees the survivor.
    static let liveReferrals: [Haven_V1_ReferralStatus] = [.pending, .accepted, .completed]

    /// Whether a referral of the survivor to the partner is live now. Runs
    /// the same query whatever the arguments (an empty partner id matches nothing).
    static func hasLiveReferral(_ survivorID: String, partnerID: String, _ tx: any StoreReader) throws -> Bool {
        try self.hasReferral(survivorID, partnerID: partnerID, in: liveReferrals, tx)
    }

    /// Whether the partner accepted a referral of the survivor that is still accepted.
    static func hasAcceptedReferral(_ survivorID: String, partnerID: String, _ tx: any StoreReader) throws -> Bool {
        try self.hasReferral(survivorID, partnerID: partnerID, in: [.accepted], tx)
    }

    private static func hasReferral(
        _ survivorID: String,
        partnerID: String,
        in statuses: [Haven_V1_ReferralStatus],
        _ tx: any StoreReader
    ) throws -> Bool {
        var query = RecordQuery(order: .newestFirst, limit: 1)
        query.subjectID = survivorID
        query.partnerID = partnerID
        query.statuses = statuses.map(\.rawValue)
        return try tx.count(Haven_V1_Referral.self, query) > 0 && !partnerID.isEmpty
    }

    /// The referral filter of a partner's survivor list (a subquery in the store,
    /// so a partner with many referrals never needs one SQL variable per survivor).
    static func referredTo(_ partnerID: String) -> ReferralFilter {
        ReferralFilter(partnerID: partnerID, statuses: liveReferrals.map(\.rawValue))
    }

    /// Scopes in force for a partner now.
    static func scopes(_ consents: [Haven_V1_Consent], partnerID: String, now: Int64) -> Set<Haven_V1_ConsentScope> {
        Set(
            consents.filter {
                $0.partnerID == partnerID && $0.withdrawnAtUnixMs == 0
                    && ($0.expiresAtUnixMs == 0 || $0.expiresAtUnixMs > now)
            }.flatMap(\.scopes)
        )
    }

    /// The survivor record as a partner sees it (no identity).
    ///
    /// - Parameters:
    ///   - survivor: The record to show (possibly an old snapshot).
    ///   - consents: The survivor's consents as stored *now*: they decide the
    ///     scopes, whatever the snapshot carried.
    package static func partnerView(
        of survivor: Haven_V1_Survivor,
        consents: [Haven_V1_Consent],
        partnerID: String,
        now: Int64
    ) -> Haven_V1_Survivor {
        let scopes = self.scopes(consents, partnerID: partnerID, now: now)
        var view = Haven_V1_Survivor()
        view.id = survivor.id
        view.code = survivor.code
        view.officeCode = survivor.officeCode
        view.version = survivor.version
        view.ageAtIntake = survivor.ageAtIntake
        view.minorAtIntake = survivor.minorAtIntake
        view.intakeOn = survivor.intakeOn
        view.status = survivor.status
        view.createdAtUnixMs = survivor.createdAtUnixMs
        view.updatedAtUnixMs = survivor.updatedAtUnixMs
        view.consents = consents.filter { $0.partnerID == partnerID }
        if scopes.contains(.services) {
            view.services = survivor.services
            view.serviceCount = survivor.serviceCount
        }
        if scopes.contains(.placement) { view.placements = survivor.placements }
        if scopes.contains(.cases) { view.caseIds = survivor.caseIds }
        return view
    }

    /// Puts the identity fields the partner's consent covers on `view`, and
    /// names the others in `withheld_identity_fields`.
    static func applyIdentity(
        _ identity: Haven_V1_SurvivorIdentity,
        to view: inout Haven_V1_Survivor,
        consents: [Haven_V1_Consent],
        partnerID: String,
        now: Int64
    ) {
        let scopes = self.scopes(consents, partnerID: partnerID, now: now)
        var shared = Haven_V1_SurvivorIdentity()
        var withheld: [String] = []
        if scopes.contains(.name) {
            shared.legalName = identity.legalName
            shared.otherNames = identity.otherNames
        } else {
            withheld += ["legal_name", "other_names"]
        }
        if scopes.contains(.dateOfBirth) {
            shared.dateOfBirth = identity.dateOfBirth
        } else {
            withheld.append("date_of_birth")
        }
        if scopes.contains(.demographics) {
            shared.gender = identity.gender
            shared.nationality = identity.nationality
            shared.languages = identity.languages
        } else {
            withheld += ["gender", "nationality", "languages"]
        }
        if scopes.contains(.contacts) { shared.contacts = identity.contacts } else { withheld.append("contacts") }
        if scopes.contains(.addresses) {
            shared.homeAddress = identity.homeAddress
            shared.currentAddress = identity.currentAddress
        } else {
            withheld += ["home_address", "current_address"]
        }
        // Case notes are never shared with partners.
        withheld.append("notes")
        view.identity = shared
        view.withheldIdentityFields = withheld
    }
}
