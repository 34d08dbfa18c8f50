import HavenProtocol

/// Which services of one survivor to read (``StoreReader/survivorServices(_:)``).
///
/// A survivor's services are stored as rows of their own, one per service,
/// beside the survivor's record (which keeps `service_count`, not the
/// services): recording a service costs the service, not the survivor, and
/// reads take only the services they need.
package struct SurvivorServiceQuery: Sendable {
    /// The survivor.
    package var survivorID: String
    /// Only services after this position.
    package var afterSequence: UInt32 = 0
    /// The newest first (the latest services) instead of the oldest.
    package var newestFirst = false
    /// At most this many.
    package var limit: Int

    /// One survivor's services after `sequence`, oldest first.
    package init(_ survivorID: String, after sequence: UInt32 = 0, limit: Int) {
        self.survivorID = survivorID
        self.afterSequence = sequence
        self.limit = limit
    }
}

extension Haven_V1_Survivor {
    /// The services a change recorded, taken out of the survivor before its
    /// record is stored: the store keeps them as rows of their own.
    package mutating func takeRecordedServices() -> [Haven_V1_ServiceRecord] {
        let services = self.services
        self.services = []
        return services
    }

    /// Records a service: its place after the last (`sequence`, and the
    /// survivor's `service_count`), and the service as the only one the
    /// survivor carries, as a write's response and the change feed show it.
    package mutating func record(_ service: Haven_V1_ServiceRecord) {
        var service = service
        service.sequence = self.serviceCount + 1
        self.serviceCount = service.sequence
        self.services = [service]
    }
}
