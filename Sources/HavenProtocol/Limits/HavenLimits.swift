/// Sizes every Haven deployment guarantees, so that anything the server
/// stores can always be returned in one frame.
///
/// Each field of each request has its own documented maximum
/// (``HavenFieldLimits``); these are the bounds on what those fields add up to.
public enum HavenLimits {
    /// The most a stored record (a case with its whole timeline, a survivor
    /// with its services) may occupy, serialized: 1 MiB. A write that would
    /// make a record larger fails with FAILED_PRECONDITION and changes nothing.
    public static let maxRecordBytes = 1024 * 1024

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
