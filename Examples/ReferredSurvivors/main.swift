// A partner's smallest useful program: list the survivors referred to it.
//   swift run ReferredSurvivors CREDENTIALS_DIR
// The server comes from the bundle (written at enrolment), or HAVEN_SERVER=host:port.
import Foundation
import HavenClient
import HavenProtocol

let arguments = CommandLine.arguments
guard arguments.count == 2 else {
    FileHandle.standardError.write(Data("usage: ReferredSurvivors CREDENTIALS_DIR\n".utf8))
    exit(64)
}
do {
    let credentials = try HavenCredentials(bundle: URL(fileURLWithPath: arguments[1]))
    try await withHavenClient(try HavenClientConfiguration(credentials: credentials)) { client in
        var request = Haven_V1_ListSurvivorsRequest()
        repeat {
            let page = try await client.survivors.list(request)
            for survivor in page.survivors {
                print(survivor.code, survivor.status, "age at intake \(survivor.ageAtIntake)")
            }
            request.page.pageToken = page.page.nextPageToken
        } while !request.page.pageToken.isEmpty
    }
} catch {
    FileHandle.standardError.write(Data("ReferredSurvivors: \(error)\n".utf8))
    exit(1)
}
