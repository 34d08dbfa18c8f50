import HavenProtocol

/// The free-text fields of a record that are sealed at rest: taken out of the
/// record's body before it is stored, sealed under the record's own key and
/// put back when it is read.
///
/// Which fields, and why (docs/SECURITY.md, "Sealed at rest"): case notes,
/// referral notes and resolutions, placement home names (they can locate a
/// safe house) and service details. Keys name each field by the id of the
/// element that holds it, so the mapping survives reordering.
package typealias SealedFields = [String: String]

/// The sealing of one kind of record.
package protocol SealsFields {
    /// Removes the sealed fields from the record and returns them.
    mutating func takeSealedFields() -> SealedFields
    /// Puts sealed fields back.
    mutating func putSealedFields(_ fields: SealedFields)
}

extension Haven_V1_Case: SealsFields {
    package mutating func takeSealedFields() -> SealedFields {
        var fields: SealedFields = [:]
        for index in self.events.indices {
            guard case .note(var note) = self.events[index].detail, !note.text.isEmpty else { continue }
            fields["event/\(self.events[index].id)"] = note.text
            note.text = ""
            self.events[index].detail = .note(note)
        }
        return fields
    }

    package mutating func putSealedFields(_ fields: SealedFields) {
        guard !fields.isEmpty else { return }
        for index in self.events.indices {
            guard case .note(var note) = self.events[index].detail,
                let text = fields["event/\(self.events[index].id)"]
            else { continue }
            note.text = text
            self.events[index].detail = .note(note)
        }
    }
}

extension Haven_V1_Survivor: SealsFields {
    package mutating func takeSealedFields() -> SealedFields {
        var fields: SealedFields = [:]
        for index in self.placements.indices where !self.placements[index].homeName.isEmpty {
            fields["placement/\(self.placements[index].id)"] = self.placements[index].homeName
            self.placements[index].homeName = ""
        }
        for index in self.services.indices where !self.services[index].detail.isEmpty {
            fields["service/\(self.services[index].id)"] = self.services[index].detail
            self.services[index].detail = ""
        }
        return fields
    }

    package mutating func putSealedFields(_ fields: SealedFields) {
        guard !fields.isEmpty else { return }
        for index in self.placements.indices {
            if let name = fields["placement/\(self.placements[index].id)"] { self.placements[index].homeName = name }
        }
        for index in self.services.indices {
            if let detail = fields["service/\(self.services[index].id)"] { self.services[index].detail = detail }
        }
    }
}

extension Haven_V1_Referral: SealsFields {
    package mutating func takeSealedFields() -> SealedFields {
        var fields: SealedFields = [:]
        if !self.note.isEmpty { fields["note"] = self.note }
        if !self.resolution.isEmpty { fields["resolution"] = self.resolution }
        self.note = ""
        self.resolution = ""
        return fields
    }

    package mutating func putSealedFields(_ fields: SealedFields) {
        if let note = fields["note"] { self.note = note }
        if let resolution = fields["resolution"] { self.resolution = resolution }
    }
}

/// Sealing through the record kind, for code that holds a record generically.
enum FieldSealing {
    /// The plaintext of a sealed-fields box: for each field, sorted by key,
    /// a varint length and the key's UTF-8, a varint length and the value's.
    static func encode(_ fields: SealedFields) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(fields.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count + 6 })
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            for text in [key, value] {
                var length = UInt64(text.utf8.count)
                while length >= 0x80 {
                    bytes.append(UInt8(truncatingIfNeeded: length) | 0x80)
                    length >>= 7
                }
                bytes.append(UInt8(length))
                bytes.append(contentsOf: text.utf8)
            }
        }
        return bytes
    }

    /// Reads what ``encode(_:)`` wrote; nil when it is not that.
    static func decode(_ bytes: [UInt8]) -> SealedFields? {
        var fields: SealedFields = [:]
        var index = 0
        func text() -> String? {
            var length: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard index < bytes.count, shift < 64 else { return nil }
                let byte = bytes[index]
                index += 1
                length |= UInt64(byte & 0x7F) << shift
                if byte < 0x80 { break }
                shift += 7
            }
            guard length <= UInt64(bytes.count - index) else { return nil }
            let end = index + Int(length)
            defer { index = end }
            return String(validating: bytes[index..<end], as: UTF8.self)
        }
        while index < bytes.count {
            guard let key = text(), let value = text() else { return nil }
            fields[key] = value
        }
        return fields
    }

    static func take<R: StoredRecord>(_ record: inout R) -> SealedFields {
        guard var sealing = record as? any SealsFields else { return [:] }
        let fields = sealing.takeSealedFields()
        record = sealing as! R
        return fields
    }

    static func put<R: StoredRecord>(_ fields: SealedFields, into record: inout R) {
        guard !fields.isEmpty, var sealing = record as? any SealsFields else { return }
        sealing.putSealedFields(fields)
        record = sealing as! R
    }

    /// The record a change event carries, as a stored record, with its kind.
    static func take(from event: inout Haven_V1_ChangeEvent) -> (RecordKind, String, String, UInt64, SealedFields)? {
        switch event.subject {
        case .caseRecord(var record):
            let fields = record.takeSealedFields()
            event.subject = .caseRecord(record)
            return (.caseRecord, record.id, record.officeCode, record.version, fields)
        case .survivor(var record):
            let fields = record.takeSealedFields()
            event.subject = .survivor(record)
            return (.survivor, record.id, record.officeCode, record.version, fields)
        case .referral(var record):
            let fields = record.takeSealedFields()
            event.subject = .referral(record)
            return (.referral, record.id, record.officeCode, record.version, fields)
        case .office(let record): return (.office, record.code, record.code, record.version, [:])
        case .partner(let record): return (.partner, record.id, "", record.version, [:])
        case .alert(let record): return (.alert, record.id, record.officeCode, record.version, [:])
        default: return nil
        }
    }

    static func put(_ fields: SealedFields, into event: inout Haven_V1_ChangeEvent) {
        guard !fields.isEmpty else { return }
        switch event.subject {
        case .caseRecord(var record):
            record.putSealedFields(fields)
            event.subject = .caseRecord(record)
        case .survivor(var record):
            record.putSealedFields(fields)
            event.subject = .survivor(record)
        case .referral(var record):
            record.putSealedFields(fields)
            event.subject = .referral(record)
        default: break
        }
    }
}
