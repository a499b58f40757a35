// The node's own HTTP headers, named once.
import HTTPTypes

extension HTTPField.Name {
    /// Set by an edge asking a stream's origin (or standby); its value is the edge's node id.
    package static let streamTubeEdge = HTTPField.Name("X-StreamTube-Edge")!
    /// Set by a stream's owner passing a request on to the nodes after it in the ring (it holds
    /// nothing of the stream yet): the node asked answers it itself, never passes it on again.
    package static let streamTubePassedOn = HTTPField.Name("X-StreamTube-Passed-On")!
    /// The viewer's region, chosen by the player or a load balancer.
    package static let streamTubeRegion = HTTPField.Name("X-StreamTube-Region")!
    /// A cluster-key token between nodes (replication, record lookups).
    package static let streamTubeClusterToken = HTTPField.Name("X-StreamTube-Replica-Key")!
}

extension HTTPField.Name {
    package static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
    package static let xFrameOptions = HTTPField.Name("X-Frame-Options")!
    /// The anti-forgery token a script sends back (`CSRFMiddleware`).
    package static let csrfToken = HTTPField.Name("X-CSRF-Token")!
    /// Stripe's webhook signature (`t=...,v1=...`).
    package static let stripeSignature = HTTPField.Name("Stripe-Signature")!
    /// BTCPay Server's webhook signature (`sha256=...`).
    package static let btcpaySignature = HTTPField.Name("BTCPay-Sig")!
    /// The client's address as each proxy on the way saw it (taken only from trusted proxies).
    package static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
    /// How the client reached the load balancer (`https` or `http`).
    package static let xForwardedProto = HTTPField.Name("X-Forwarded-Proto")!
}
