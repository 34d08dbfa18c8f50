import HavenProtocol
import HavenStore

/// What a timeline event does to the accused it names.
struct AccusedEffect {
    var accusedIDs: [String]
    var newStatus: Haven_V1_AccusedLegalStatus?
    var alert: Haven_V1_AlertKind?
}

extension Haven_V1_CaseEvent.OneOf_Detail {
    /// The accused named, the status they move to, and the alert raised.
    /// Validates the detail's own fields.
    func effect() throws(HavenError) -> AccusedEffect {
        switch self {
        case .rescueOperation(let operation):
            try Validate.text(operation.place, "event.rescue_operation.place")
            try Validate.text(operation.ledBy, "event.rescue_operation.led_by", required: false)
            try Validate.require(
                operation.peopleRescued <= Validate.maxPeopleRescued,
                "event.rescue_operation.people_rescued",
                "at most \(Validate.maxPeopleRescued)"
            )
            try Validate.require(
                operation.minorsRescued <= operation.peopleRescued,
                "event.rescue_operation.minors_rescued",
                "more than people_rescued"
            )
            return AccusedEffect(accusedIDs: [])
        case .arrest(let arrest):
            return AccusedEffect(accusedIDs: arrest.accusedIds, newStatus: .inCustody)
        case .chargeSheet(let sheet):
            try Validate.text(sheet.charges, "event.charge_sheet.charges")
            return AccusedEffect(accusedIDs: sheet.accusedIds)
        case .hearing(let hearing):
            try Validate.text(hearing.court, "event.hearing.court")
            try Validate.text(hearing.summary, "event.hearing.summary", required: false)
            try Validate.date(hearing.nextHearingOn, "event.hearing.next_hearing_on", required: false)
            return AccusedEffect(accusedIDs: [])
        case .conviction(let conviction):
            try Validate.text(conviction.sentence, "event.conviction.sentence")
            return AccusedEffect(accusedIDs: conviction.accusedIds, newStatus: .convicted)
        case .acquittal(let acquittal):
            return AccusedEffect(accusedIDs: acquittal.accusedIds, newStatus: .acquitted, alert: .acquitted)
        case .bailGranted(let bail):
            try Validate.text(bail.conditions, "event.bail_granted.conditions", required: false)
            return AccusedEffect(accusedIDs: bail.accusedIds, newStatus: .onBail, alert: .bailGranted)
        case .appealFiled(let appeal):
            return AccusedEffect(accusedIDs: appeal.accusedIds)
        case .appealDecided(let appeal):
            switch appeal.outcome {
            case .convictionOverturned:
                return AccusedEffect(accusedIDs: appeal.accusedIds, newStatus: .acquitted, alert: .acquitted)
            case .acquittalOverturned:
                return AccusedEffect(accusedIDs: appeal.accusedIds, newStatus: .convicted)
            case .upheld, .sentenceChanged, .remanded:
                return AccusedEffect(accusedIDs: appeal.accusedIds)
            case .unspecified, .UNRECOGNIZED:
                throw HavenError.invalidField("event.appeal_decided.outcome", "required")
            }
        case .reArrest(let arrest):
            return AccusedEffect(
                accusedIDs: arrest.accusedIds,
                newStatus: arrest.returnedToPrison ? .convicted : .inCustody
            )
        case .release(let release):
            return AccusedEffect(accusedIDs: release.accusedIds, newStatus: .released, alert: .released)
        case .absconded(let absconded):
            return AccusedEffect(accusedIDs: absconded.accusedIds, newStatus: .absconding, alert: .absconded)
        case .note(let note):
            try Validate.text(note.text, "event.note.text")
            return AccusedEffect(accusedIDs: [])
        case .statusChanged:
            throw HavenError.invalidField("event.status_changed", "written by the server; use UpdateCaseStatus")
        }
    }

    /// Whether this kind of event must name at least one accused.
    var namesAccused: Bool {
        switch self {
        case .arrest, .chargeSheet, .conviction, .acquittal, .bailGranted, .appealFiled, .appealDecided, .reArrest,
            .release, .absconded:
            true
        case .rescueOperation, .hearing, .note, .statusChanged:
            false
        }
    }
}

extension CaseService {
    func appendCaseEvent(
        _ request: Haven_V1_AppendCaseEventRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_Case {
        guard let detail = request.event.detail else {
            throw HavenError.invalidField("event.detail", "exactly one kind of event is required")
        }
        try Validate.date(request.event.occurredOn, "event.occurred_on")
        let effect = try detail.effect()
        if detail.namesAccused {
            try Validate.require(!effect.accusedIDs.isEmpty, "event.accused_ids", "name at least one accused")
        }
        let env = self.environment
        let idempotency = try env.writer.idempotency(key: request.idempotencyKey, of: request)
        // Drawn before the store's one writer takes the write (a system call and
        // 2.7 % of the writer's time when drawn inside it); unused on a replay.
        let eventID = env.newEventID()
        return try await env.writer.transaction(context) { tx in
            try env.writer.idempotent(context, idempotency, tx) {
                try Self.mutate(request.caseID, .optional(request.expectedVersion), context, env, tx) {
                    record,
                    tx,
                    now in
                    let known = Set(record.accused.map(\.id))
                    for id in effect.accusedIDs where !known.contains(id) {
                        throw HavenError.invalidField(
                            "event.accused_ids",
                            "\(id.prefix(64)) is not an accused of this case"
                        )
                    }
                    Self.append(request.event, to: &record, id: eventID, actor: context.principal.actor, now: now)
                    guard let status = effect.newStatus else { return }
                    for index in record.accused.indices where effect.accusedIDs.contains(record.accused[index].id) {
                        var change = Haven_V1_AccusedStatusChange()
                        change.status = status
                        change.effectiveOn = request.event.occurredOn
                        change.eventID = eventID
                        record.accused[index].record(change)
                        if let kind = effect.alert {
                            try self.raiseAlert(
                                kind,
                                context: context,
                                record: record,
                                accusedID: record.accused[index].id,
                                eventID: eventID,
                                tx: tx,
                                now: now
                            )
                        }
                    }
                }
            }
        }
    }

    /// Raises an alert for the office and flags every survivor linked to the case,
    /// in the caller's transaction.
    private func raiseAlert(
        _ kind: Haven_V1_AlertKind,
        context: CallContext,
        record: Haven_V1_Case,
        accusedID: String,
        eventID: String,
        tx: any StoreWriter,
        now: Int64
    ) throws {
        let env = self.environment
        var alert = Haven_V1_Alert()
        alert.id = env.newID("alr")
        alert.officeCode = record.officeCode
        alert.caseID = record.id
        alert.caseReference = record.reference
        alert.accusedID = accusedID
        alert.kind = kind
        alert.eventID = eventID
        alert.flaggedSurvivorIds = record.survivorIds
        alert.raisedAtUnixMs = now
        try env.writer.create(alert, permission: .office(.writeRecords), context, tx)

        for survivorID in record.survivorIds {
            guard var survivor = try tx.load(Haven_V1_Survivor.self, id: survivorID) else { continue }
            var flag = Haven_V1_SurvivorFlag()
            flag.alertID = alert.id
            flag.reason = "\(record.reference): \(kind.reason)"
            flag.raisedAtUnixMs = now
            try env.writer.follow(&survivor, tx) { $0.flags.append(flag) }
        }
    }
}

extension Haven_V1_AlertKind {
    /// In a sentence, for flags.
    var reason: String {
        switch self {
        case .bailGranted: "an accused was granted bail"
        case .released: "an accused was released"
        case .acquitted: "an accused was acquitted"
        case .absconded: "an accused absconded"
        case .unspecified, .UNRECOGNIZED: "an accused's status changed"
        }
    }
}
