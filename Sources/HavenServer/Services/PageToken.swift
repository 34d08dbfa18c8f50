import Crypto
import Foundation
import HavenProtocol
import HavenStore
import SwiftProtobuf

/// Page tokens: the position after a page's last record, bound to the
/// filters of the request that produced it. Opaque to clients.
package enum PageToken {
    private struct Token: Codable {
        var f: String
        var s: Int64
        var a: String
        var i: String
    }

    /// The page size to use: 0 means 50; at most 500.
    package static func size(_ page: Haven_V1_PageRequest) -> Int {
        page.pageSize == 0 ? 50 : Int(min(page.pageSize, 500))
    }

    /// Reads the request's token. `filters` is the request with its page cleared.
    package static func cursor(_ page: Haven_V1_PageRequest, filters: some SwiftProtobuf.Message) throws -> PageCursor?
    {
        guard !page.pageToken.isEmpty else { return nil }
        var base64 = page.pageToken.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard
            let data = Data(base64Encoded: base64),
            let token = try? JSONDecoder().decode(Token.self, from: data)
        else {
            throw HavenError.invalidField("page.page_token", "not a token this server issued")
        }
        guard token.f == (try self.digest(filters)) else {
            throw HavenError.invalidField("page.page_token", "issued for different filters")
        }
        return PageCursor(sortKey: token.s, alias: token.a, id: token.i)
    }

    /// The token for the page after `cursor`; empty on the last page.
    package static func token(
        after cursor: PageCursor?,
        filters: some SwiftProtobuf.Message
    ) throws -> Haven_V1_PageInfo {
        var info = Haven_V1_PageInfo()
        if let cursor {
            let data = try JSONEncoder().encode(
                Token(f: try self.digest(filters), s: cursor.sortKey, a: cursor.alias, i: cursor.id)
            )
            info.nextPageToken = data.base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
        }
        return info
    }

    private static func digest(_ filters: some SwiftProtobuf.Message) throws -> String {
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        let bytes: [UInt8] = try filters.serializedBytes(options: options)
        return SHA256.hash(data: bytes).prefix(8).map { String(format: "%02x", $0) }.joined()
    }
}

/// A request that pages through one history by its elements' places
/// (timeline events, services, an accused's status changes).
package protocol HistoryPageRequest: SwiftProtobuf.Message {
    var page: Haven_V1_PageRequest { get }
    /// Only elements after this place; 0 means from the first.
    var afterSequence: UInt32 { get }
    mutating func clearPage()
}

extension Haven_V1_ListCaseEventsRequest: HistoryPageRequest {}
extension Haven_V1_ListSurvivorServicesRequest: HistoryPageRequest {}
extension Haven_V1_ListAccusedHistoryRequest: HistoryPageRequest {}

/// Paging through a history: where a page starts (the request's
/// `after_sequence`, or its token's place), how many elements to read, and
/// the page of what was read, with the token after it.
package struct HistoryPaging<Request: HistoryPageRequest> {
    /// The request with its page cleared: what a token is bound to.
    private let filters: Request
    private let size: Int
    /// Only elements after this place.
    package let after: UInt32

    /// - Throws: INVALID_ARGUMENT for a token this server did not issue, or
    ///   issued for another request.
    package init(_ request: Request) throws {
        var filters = request
        filters.clearPage()
        self.filters = filters
        self.size = PageToken.size(request.page)
        let cursor = try PageToken.cursor(request.page, filters: filters)
        self.after = max(request.afterSequence, cursor.map { UInt32(clamping: $0.sortKey) } ?? 0)
    }

    /// How many elements to read: one more than a page holds, which tells
    /// whether another page follows.
    package var limit: Int { self.size + 1 }

    /// The page of `elements` (read with ``limit``, in order): at most a
    /// page's count and ``HavenLimits/maxPageBytes``, always at least one;
    /// and the token after its last element, empty on the last page.
    package func page<Element: HavenWireMessage>(
        _ elements: [Element],
        place: (Element) -> UInt32
    ) throws -> (elements: [Element], info: Haven_V1_PageInfo) {
        let page = boundedPrefix(elements, count: self.size, bytes: HavenLimits.maxPageBytes)
        let next =
            page.count < elements.count
            ? page.last.map { PageCursor(sortKey: Int64(place($0)), alias: "", id: "") } : nil
        return (page, try PageToken.token(after: next, filters: self.filters))
    }
}
