import HavenProtocol

extension Representative {
    /// The write the end-to-end benchmarks and the call profiler measure: a
    /// dated note (fictional) appended to a case's timeline.
    public static func append(caseID: String, note: String) -> Haven_V1_AppendCaseEventRequest {
        var append = Haven_V1_AppendCaseEventRequest()
        append.caseID = caseID
        append.event.occurredOn = Self.date(2026, 4, 2)
        append.event.note.text = note
        return append
    }
}

extension Representative {
    /// A survivor registered for the benchmarks (its identity fictional).
    public static func survivor(number: Int) -> Haven_V1_RegisterSurvivorRequest {
        var register = Haven_V1_RegisterSurvivorRequest()
        register.officeCode = "KOL"
        register.ageAtIntake = 16
        register.intakeOn = Self.date(2026, 1, 10)
        register.identity.legalName = "Benchmark Survivor \(number) (fictional)"
        return register
    }

    /// A service delivered to a survivor, with a detail (fictional), as a
    /// benchmark records it.
    public static func service(survivorID: String, detail: String) -> Haven_V1_RecordServiceRequest {
        var record = Haven_V1_RecordServiceRequest()
        record.survivorID = survivorID
        record.service.kind = .counselling
        record.service.deliveredOn = Self.date(2026, 4, 2)
        record.service.detail = detail
        return record
    }
}
