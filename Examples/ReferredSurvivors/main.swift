// A partner's smallest useful program: list the survivors referred to it.
//   swift run ReferredSurvivors haven-data/credentials/asha-home [host] [port]
import Foundation
import HavenClient
import HavenProtocol

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    print("usage: ReferredSurvivors CREDENTIALS_DIR [HOST] [PORT]")
    exit(64)
}
let credentials = try HavenCredentials(bundle: URL(fileURLWithPath: arguments[1]))
let host = arguments.count > 2 ? arguments[2] : "localhost"
let port = arguments.count > 3 ? Int(arguments[3]) ?? 7443 : 7443

try await withHavenClient(HavenClientConfiguration(host: host, port: port, credentials: credentials)) { client in
    var request = Haven_V1_ListSurvivorsRequest()
    repeat {
        let page = try await client.survivors.list(request)
        for survivor in page.survivors {
            print(survivor.code, survivor.status, "age at intake \(survivor.ageAtIntake)")
        }
        request.page.pageToken = page.page.nextPageToken
    } while !request.page.pageToken.isEmpty
}
