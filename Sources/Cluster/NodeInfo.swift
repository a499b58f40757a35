// NodeInfo: who this node is, as routes and answers name it.
import Foundation

package struct NodeInfo: Sendable {
    package var nodeID: String
    package var region: String
    package var rtmpPort: Int
    package var httpPort: Int
    /// Host name put into URLs when set; else the Host the request came to.
    package var publicHost: String?
    package var startedAt = Date()

    package init(nodeID: String, region: String, rtmpPort: Int, httpPort: Int, publicHost: String?) {
        self.nodeID = nodeID
        self.region = region
        self.rtmpPort = rtmpPort
        self.httpPort = httpPort
        self.publicHost = publicHost
    }
}
