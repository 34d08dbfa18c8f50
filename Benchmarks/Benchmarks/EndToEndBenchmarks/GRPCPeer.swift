import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import HavenEmbedding
import HavenProtocol
import Synchronization

/// The same unary read served by grpc-swift-2 (HTTP/2 over mutual TLS, the
/// deployment's certificates), reading the same case from the same store: what
/// a team would pick instead of Haven's protocol.
final class GRPCPeer: Sendable {
    static let getCase = GRPCCore.MethodDescriptor(fullyQualifiedService: "haven.v1.CaseService", method: "GetCase")

    struct Service: RegistrableRPCService {
        let server: EmbeddedServer

        func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
            router.registerHandler(
                forMethod: GRPCPeer.getCase,
                deserializer: ProtobufDeserializer<Haven_V1_GetCaseRequest>(),
                serializer: ProtobufSerializer<Haven_V1_Case>()
            ) { request, _ in
                var id = ""
                for try await message in request.messages { id = message.caseID }
                guard let found = try await self.server.readCase(id: id) else {
                    throw RPCError(code: .notFound, message: "no case with that id")
                }
                return StreamingServerResponse(single: ServerResponse(message: found))
            }
        }
    }

    private struct State {
        var server: GRPCServer<HTTP2ServerTransport.Posix>?
        var clients: [GRPCClient<HTTP2ClientTransport.Posix>] = []
        var tasks: [Task<Void, any Error>] = []
    }

    private let state = Mutex(State())

    /// Starts the gRPC server and `connections` clients.
    func start(_ embedded: EmbeddedServer, clientBundle: URL, connections: Int) async throws {
        let transport = HTTP2ServerTransport.Posix(
            address: .ipv4(host: "127.0.0.1", port: 0),
            transportSecurity: .mTLS(
                certificateChain: [.file(path: embedded.serverCertificateFile, format: .pem)],
                privateKey: .file(path: embedded.serverKeyFile, format: .pem)
            ) { tls in
                tls.trustRoots = .certificates([.file(path: embedded.caCertificateFile, format: .pem)])
            }
        )
        let server = GRPCServer(transport: transport, services: [Service(server: embedded)])
        let serving = Task { try await server.serve() }
        guard let port = try await transport.listeningAddress.ipv4?.port else {
            throw RPCError(code: .unavailable, message: "gRPC server is not listening")
        }
        var clients: [GRPCClient<HTTP2ClientTransport.Posix>] = []
        var tasks = [serving]
        for _ in 0..<connections {
            let client = GRPCClient(
                transport: try HTTP2ClientTransport.Posix(
                    target: .ipv4(address: "127.0.0.1", port: port),
                    transportSecurity: .mTLS(
                        certificateChain: [
                            .file(path: clientBundle.appendingPathComponent("client.pem").path, format: .pem)
                        ],
                        privateKey: .file(
                            path: clientBundle.appendingPathComponent("client-key.pem").path,
                            format: .pem
                        )
                    ) { tls in
                        tls.trustRoots = .certificates([.file(path: embedded.caCertificateFile, format: .pem)])
                    }
                )
            )
            tasks.append(Task { try await client.runConnections() })
            clients.append(client)
        }
        self.state.withLock { state in
            state.server = server
            state.clients = clients
            state.tasks = tasks
        }
    }

    /// One unary read on client `index`.
    func read(caseID: String, client index: Int) async throws -> Haven_V1_Case {
        let client = self.state.withLock { $0.clients[index % $0.clients.count] }
        return try await client.unary(
            request: ClientRequest(message: Haven_V1_GetCaseRequest.with { $0.caseID = caseID }),
            descriptor: Self.getCase,
            serializer: ProtobufSerializer<Haven_V1_GetCaseRequest>(),
            deserializer: ProtobufDeserializer<Haven_V1_Case>(),
            options: .defaults
        ) { response in try response.message }
    }

    func stop() async {
        let (server, clients, tasks) = self.state.withLock { ($0.server, $0.clients, $0.tasks) }
        for client in clients { client.beginGracefulShutdown() }
        server?.beginGracefulShutdown()
        for task in tasks { _ = await task.result }
    }
}
