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
