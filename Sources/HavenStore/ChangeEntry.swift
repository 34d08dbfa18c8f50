import HavenProtocol

/// A change to append to the change log.
package struct NewChange: Sendable {
    /// The change as the feed shows it (cursor and sequence are filled on read).
    package var event: Haven_V1_ChangeEvent
    /// The office it belongs to, for filtering.
    package var officeCode: String?
    /// The partner concerned, for filtering.
    package var partnerID: String?
    /// The survivor concerned, for partners' visibility.
    package var survivorID: String?

    package init(event: Haven_V1_ChangeEvent, officeCode: String?, partnerID: String? = nil, survivorID: String? = nil)
    {
        self.event = event
        self.officeCode = officeCode
        self.partnerID = partnerID
        self.survivorID = survivorID
    }
}

/// A committed change-log entry.
package struct ChangeEntry: Sendable {
    /// Position in the log: increasing, gap-free, in commit order.
    package var sequence: UInt64
    /// The change, with `sequence` set.
    package var event: Haven_V1_ChangeEvent
    /// The office it belongs to.
    package var officeCode: String?
    /// The partner concerned.
    package var partnerID: String?
    /// The survivor concerned.
    package var survivorID: String?

    package init(
        sequence: UInt64,
        event: Haven_V1_ChangeEvent,
        officeCode: String?,
        partnerID: String?,
        survivorID: String?
    ) {
        self.sequence = sequence
        self.event = event
        self.officeCode = officeCode
        self.partnerID = partnerID
        self.survivorID = survivorID
    }
}

/// The result of an idempotent create, kept so that a retry returns it.
package struct IdempotencyRecord: Sendable, Hashable {
    package var principalID: String
    package var key: String
    /// The method it was used with.
    package var method: String
    /// SHA-256 of the request, so a key reused for another request is caught.
    package var requestDigest: [UInt8]
    /// The id of the record created.
    package var resultID: String
    package var createdAtUnixMs: Int64

    package init(
        principalID: String,
        key: String,
        method: String,
        requestDigest: [UInt8],
        resultID: String,
        createdAtUnixMs: Int64
    ) {
        self.principalID = principalID
        self.key = key
        self.method = method
        self.requestDigest = requestDigest
        self.resultID = resultID
        self.createdAtUnixMs = createdAtUnixMs
    }
}

/// A user or partner organisation allowed to connect.
package struct Account: Sendable, Hashable {
    /// The id, also the common name of its client certificates.
    package var id: String
    package var displayName: String
    package var role: Haven_V1_Role
    /// Offices it works in (directors, caseworkers).
    package var officeCodes: [String]
    /// Its partner organisation (partners).
    package var partnerID: String
    /// False once disabled: refused at once, even with a valid certificate.
    package var enabled: Bool
    package var createdAtUnixMs: Int64

    package init(
        id: String,
        displayName: String,
        role: Haven_V1_Role,
        officeCodes: [String] = [],
        partnerID: String = "",
        enabled: Bool = true,
        createdAtUnixMs: Int64
    ) {
        self.id = id
        self.displayName = displayName
        self.role = role
        self.officeCodes = officeCodes
        self.partnerID = partnerID
        self.enabled = enabled
        self.createdAtUnixMs = createdAtUnixMs
    }
}
