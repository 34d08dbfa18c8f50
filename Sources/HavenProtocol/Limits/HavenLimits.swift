/// Sizes every Haven deployment guarantees, so that anything the server
/// stores can always be returned in one frame.
///
/// Each field of each request has its own documented maximum
/// (``HavenFieldLimits``); these are the bounds on what those fields add up to.
public enum HavenLimits {
    /// The most a stored record (a case with its accused, a survivor with its
    /// placements and consents) may occupy, serialized: 1 MiB. A write that
    /// would make a record larger fails with FAILED_PRECONDITION and changes
    /// nothing. A case's timeline, its accused's legal status histories and
    /// a survivor's services are not part of their records: each event, each
    /// status change and each service is stored on its own, and all may grow
    /// without bound.
    public static let maxRecordBytes = 1024 * 1024

    /// The most timeline events a case read (`GetCase`, `ListCases` with the
    /// full view) carries: the latest 100. `ListCaseEvents` pages through
    /// the rest.
    public static let caseEventsInline = 100

    /// The most bytes of timeline events a case read carries (the latest
    /// event always, then as many before it as fit): 512 KiB, so that a case
    /// of ``maxRecordBytes`` with its latest events fits in a frame.
    public static let caseEventsInlineBytes = 512 * 1024

    /// The most legal status changes of each accused a case read (`GetCase`,
    /// `ListCases` with the full view) carries: the latest 10.
    /// `ListAccusedHistory` pages through the rest.
    public static let accusedHistoryInline = 10

    /// The most bytes of status changes a case read carries for all its
    /// accused together: 256 KiB (every accused's latest change first, then
    /// older ones while they fit), so that a case of ``maxRecordBytes`` with
    /// its latest events (``caseEventsInlineBytes``) and these fits in a frame.
    public static let accusedHistoryInlineBytes = 256 * 1024

    /// The most services a survivor read (`GetSurvivor`, `ListSurvivors`)
    /// carries: the latest 100. `ListSurvivorServices` pages through the rest.
    public static let survivorServicesInline = 100

    /// The most bytes of services a survivor read carries (the latest service
    /// always, then as many before it as fit): 512 KiB, so that a survivor of
    /// ``maxRecordBytes`` with its latest services fits in a frame.
    public static let survivorServicesInlineBytes = 512 * 1024

    /// The records of one list page add up to at most this many bytes: a page
    /// holds fewer records than `page_size` rather than exceed it (its
    /// `next_page_token` continues from there). A page always holds at least
    /// one record, when one matches.
    public static let maxPageBytes = 1536 * 1024

    /// The smallest frame limit a server may be configured with: a record of
    /// ``maxRecordBytes`` in a feed item, or a full page, always fits.
    public static let minFrameBytes = 2 * 1024 * 1024

    /// The most protocol versions a `Hello` may offer.
    public static let maxOfferedVersions = 16
}
