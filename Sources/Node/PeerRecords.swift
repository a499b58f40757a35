// PeerRecords: stream records across nodes that each keep their own database. A node asked
// for a stream it does not know (a broadcaster's key, a viewer's stream id) asks the other
// alive members, over HTTP with a key signed by the cluster key, and keeps what it learns.
import AsyncHTTPClient
import Foundation
import Gossip
import Logging
import NIOCore

enum PeerRecords {
    static let path = "/internal/streams"
    /// What the signed key is good for (relay and replica keys name a stream instead).
    static let scope = "records"

    /// Asks every other alive member at once; the first that knows the record answers.
    static func lookup(_ query: StreamRegistry.Query, router: ClusterRouter, client: HTTPClient, auth: RelayAuth,
                       localID: String) async -> StreamRecord? {
        let peers = router.view.snapshot.members.filter { $0.id.rawValue != localID && $0.status == .alive }
        guard !peers.isEmpty else { return nil }
        let parameter: String
        switch query {
        case .id(let id): parameter = "id=\(id)"
        case .key(let key): parameter = "key=\(key)"
        }
        let token = auth.token(streamID: scope)
        return await withTaskGroup(of: StreamRecord?.self) { group in
            for peer in peers {
                group.addTask {
                    var request = HTTPClientRequest(url: "http://\(peer.metadata.httpAddress)\(path)?\(parameter)")
                    request.headers.add(name: Replicator.authHeader, value: token)
                    guard let response = try? await client.execute(request, timeout: .seconds(2)), response.status == .ok,
                          let body = try? await response.body.collect(upTo: 1 << 16) else { return nil }
                    return try? decoder.decode(StreamRecord.self, from: Data(buffer: body))
                }
            }
            for await record in group where record != nil {
                group.cancelAll()
                return record
            }
            return nil
        }
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .secondsSince1970
        return e
    }()

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .secondsSince1970
        return d
    }()
}
