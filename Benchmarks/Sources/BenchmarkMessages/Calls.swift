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
