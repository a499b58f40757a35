// buildApplication: the one place a node is assembled, from its configuration, for `serve`
// and for tests alike.
import Accounts
import Analytics
import AsyncHTTPClient
import Catalog
import Chat
import Cluster
import Edge
import Foundation
import Gossip
import HTTPSupport
import Hummingbird
import HummingbirdCore
import HummingbirdHTTP2
import HummingbirdWebSocket
import Live
import Logging
import NodeMetrics
import NIOCore
import NIOPosix
import NIOSSL
import Origin
import Payments
import Prometheus
import Schedule
import ServiceLifecycle
import Transcode
import Web

/// A configuration that cannot run, with what to change.
package struct ConfigurationError: Error, CustomStringConvertible {
    package var description: String
    init(_ description: String) { self.description = description }
}

/// A node ready to run: its router (tests drive it directly) and its services in start order.
/// Unchecked: the router is the one member that is not Sendable, and nothing adds routes to
/// it once `buildApplication` has returned.
package struct NodeApplication: @unchecked Sendable {
    package let router: Router<NodeRequestContext>
    package let http: Application<RouterResponder<NodeRequestContext>>
    /// HTTPS and RTMPS with the node's own certificate (--tls-cert); nil without.
    package let https: Application<RouterResponder<NodeRequestContext>>?
    package let rtmps: RTMPServer?
    package let publicTLS: PublicTLS?
    package let rtmp: RTMPServer
    package let gossip: GossipNode
    package let handover: HandoverService
    /// Hands streams published here to the node the ring names their owner (a node joined).
    package let ownership: OwnershipHandover
    /// Ends replicas whose origin stopped sending (this node is no longer the standby).
    package let replicaSweep: ReplicaSweep
    package let records: RecordPlacement
    package let state: NodeState
    package let streams: LiveStreams
    package let thumbnails: Thumbnails
    /// Nil when `--recordings=false`.
    package let recorder: Recorder?
    /// Removes copies past their channel's retention or the node's budget; nil without a recorder.
    package let sweeper: RecordingSweeper?
    package let edge: EdgeProxy
    package let database: Database
    package let catalogChanges: CatalogChanges
    package let accounts: AccountService
    package let accountChanges: AccountChanges
    package let notices: StreamNotices
    package let paymentOutbox: PaymentOutbox
    package let renewals: SubscriptionRenewals
    /// Deletes this node's copies of deleted recordings.
    package let recordingDeletions: RecordingDeletions
    /// Writes the viewer sessions this node serves to the database.
    package let viewerReporter: ViewerReporter
    /// Closes idle chat rooms and rooms that moved to another node.
    let chatSweep: ChatSweep
    package let logger: Logger

    /// Runs until SIGTERM or SIGINT; shuts down in reverse order: the handover first (while
    /// everything still runs), then the HTTP server, gossip and RTMP, and the records' watch
    /// on the database last.
    package func run() async throws {
        // SIGHUP: the certificate files are read again (a renewal), nobody's connection dropped.
        let reload = publicTLS.map { tls in
            signal(SIGHUP, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: SIGHUP)
            source.setEventHandler { tls.reload() }
            source.resume()
            return source
        }
        defer { reload?.cancel() }
        let secure: [ServiceGroupConfiguration.ServiceConfiguration] = (https.map { [.init(service: $0)] } ?? []) + (rtmps.map { [.init(service: $0)] } ?? [])
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: catalogChanges)] + (recorder.map { [ServiceGroupConfiguration.ServiceConfiguration(service: $0)] } ?? [])
                + (sweeper.map { [ServiceGroupConfiguration.ServiceConfiguration(service: $0)] } ?? [])
                + secure
                + [.init(service: accountChanges), .init(service: rtmp), .init(service: gossip), .init(service: http),
                       .init(service: records), .init(service: notices), .init(service: paymentOutbox), .init(service: renewals), .init(service: thumbnails),
                       .init(service: recordingDeletions), .init(service: viewerReporter), .init(service: chatSweep),
                       .init(service: replicaSweep), .init(service: ownership), .init(service: handover)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        await close()
    }

    /// Closes what the services do not: the edge's client and store, and the database.
    package func close() async {
        await edge.shutdown()
        await database.close()
    }
}

/// The OBS "Server" field of an RTMP URL: all before the stream key.
func studioServer(_ rtmpURL: String) -> String {
    String(rtmpURL[..<(rtmpURL.range(of: "/live/")?.upperBound ?? rtmpURL.endIndex)].dropLast())
}

/// The node's software version, gossiped in its metadata.
package let streamTubeVersion = "0.1.0"

package func buildApplication(_ config: NodeConfiguration, metrics: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
                              logger baseLogger: Logger = Logger(label: "streamtube")) async throws -> NodeApplication {
    guard ["text", "json"].contains(config.logFormat) else { throw ConfigurationError("--log-format must be text or json") }
    let packaging = PackagingSettings(partTarget: config.partTarget, segmentTarget: config.segmentTarget,
                                      windowSegments: config.windowSegments)
    let seeds: [Endpoint]
    let gossipConfig: GossipConfig
    let ladder: TranscodeSettings?
    do {
        try packaging.validate()
        seeds = try config.seedEndpoints()
        gossipConfig = try config.gossipConfig()
        ladder = try config.transcodeSettings()
    } catch { throw ConfigurationError("\(error)") }
    guard config.capacity >= 0 else { throw ConfigurationError("--capacity must be at least 0") }
    // The node's own certificate: HTTPS and RTMPS beside HTTP and RTMP.
    var publicTLS: PublicTLS?
    switch (config.tlsCert, config.tlsKey) {
    case (nil, nil):
        guard !config.httpRedirect else { throw ConfigurationError("--http-redirect needs --tls-cert and --tls-key (the node's HTTPS)") }
    case (let cert?, let key?):
        do { publicTLS = try PublicTLS(certificatePath: cert, keyPath: key, logger: baseLogger) } catch { throw ConfigurationError("\(error)") }
        guard config.httpsPort != config.httpPort, config.rtmpsPort != config.rtmpPort else {
            throw ConfigurationError("--https-port and --rtmps-port must differ from --http-port and --rtmp-port")
        }
    default:
        throw ConfigurationError("--tls-cert and --tls-key go together: give both, or neither")
    }
    guard config.hstsSeconds >= 0 else { throw ConfigurationError("--hsts-seconds must be 0 (none) or more") }
    let trustedProxies: TrustedProxies
    do { trustedProxies = try config.trustedProxies.map(TrustedProxies.init) ?? TrustedProxies() } catch {
        throw ConfigurationError("--trusted-proxies: \(error)")
    }
    let configuredDatabase: DatabaseLocation?
    do { configuredDatabase = try config.database.map(DatabaseLocation.init) } catch { throw ConfigurationError("\(error)") }

    let state = try NodeState.prepare(dataDir: config.dataDir, nodeID: config.nodeID, adminToken: config.adminToken)
    var nodeLogger = baseLogger
    nodeLogger[metadataKey: "node"] = "\(state.nodeID)"
    let logger = nodeLogger
    let keyring: Keyring
    do { keyring = try NodeConfiguration.decodeKeys(config.clusterKey ?? state.clusterKey()) } catch {
        throw ConfigurationError("\(error)")
    }

    let advertise = config.advertiseHost ?? config.publicHost ?? "127.0.0.1"
    // Between nodes: plaintext, or mutual TLS with a certificate made now, signed by the CA
    // every node derives from the cluster key.
    var clusterTLS: ClusterTLS?
    if config.clusterTLS {
        let hosts = [advertise] + (config.publicHost.map { [$0] } ?? [])
        let tls: ClusterTLS
        do { tls = try ClusterTLS(clusterKeys: keyring.keys, nodeID: state.nodeID, hosts: hosts) } catch {
            throw ConfigurationError("\(error)")
        }
        // The CAs' fingerprints name them; no key is logged.
        logger.info("cluster TLS on: HTTP and RTMP between nodes use mutual TLS", metadata: [
            "ca": "\(tls.identity.fingerprints.joined(separator: ","))", "hosts": "\(hosts.joined(separator: ","))",
            "validUntil": "\(tls.identity.certificate.notValidAfter)",
        ])
        clusterTLS = tls
    } else {
        logger.info("cluster TLS off: HTTP and RTMP between nodes are plaintext (authenticated by cluster tokens)")
    }

    // The records. Once the database is open, a failure closes it (a PostgreSQL pool must be shut down).
    let sealer = ClusterKeySealer(clusterKeys: keyring.keys)
    let location = configuredDatabase ?? .sqlite(path: state.databasePath)
    let database = try await Database.open(location, logger: logger, migrations: Migrations.all(sealer: sealer))
    let catalog = StreamCatalog(store: StreamStore(database: database, sealer: sealer), logger: logger)
    do {
        let schema = try await database.schemaVersion()
        // The location as logged never carries a password.
        logger.info("database open", metadata: ["engine": "\(database.engine.rawValue)", "database": "\(location)",
                                                "schemaVersion": "\(schema)"])
        try await catalog.load()
    } catch {
        await database.close()
        throw error
    }
    // Recordings: written off the media path, reported to the database.
    let recordingStore = RecordingStore(database: database)
    let recorder = config.recordings
        ? Recorder(directory: config.recordingsDir ?? state.dataDir.appendingPathComponent("recordings").path, nodeID: state.nodeID,
                   store: recordingStore, reconnectGrace: max(config.recordingReconnectGrace, 0), logger: logger)
        : nil
    // A stream's channel is its owner (the operator's streams have none and keep everything).
    let sweeper = recorder.map { recorder in
        RecordingSweeper(recorder: recorder, maxBytes: config.recordingsMaxBytes > 0 ? config.recordingsMaxBytes : nil, channel: { stream in
            guard let r = catalog.record(id: stream), let owner = r.owner, !r.channelRecording.keepsEverything else { return nil }
            return (owner, r.channelRecording)
        }, logger: logger)
    }
    if let recorder, let sweeper { recorder.whenFinished { sweeper.poke() } }
    let streams = LiveStreams(catalog: catalog, packaging: packaging, ladder: ladder, transcoders: .ffmpeg, recorder: recorder,
                              numberFromTheClock: true, logger: logger)
    let thumbnails: Thumbnails
    do {
        let store = try ThumbnailStore(directory: state.dataDir.appendingPathComponent("thumbnails"))
        thumbnails = Thumbnails(store: store, makers: .ffmpeg, streams: streams, logger: logger)
    } catch {
        await database.close()
        throw ConfigurationError("cannot create the thumbnails folder in \(config.dataDir): \(error.localizedDescription)")
    }
    let accounts: AccountService
    do {
        accounts = try await AccountService(database: database, settings: try config.accountsSettings(), sendMail: try config.sendMail(logger: logger),
                                            logger: logger)
    } catch {
        await database.close()
        throw ConfigurationError("\(error)")
    }
    let info = NodeInfo(nodeID: state.nodeID, region: config.region, rtmpPort: config.rtmpPort, httpPort: config.httpPort,
                        publicHost: config.publicHost)

    // The cluster.
    let metadata = MemberMetadata(
        id: NodeID(state.nodeID),
        gossipAddress: Endpoint(host: advertise, port: UInt16(config.gossipPort)),
        httpAddress: Endpoint(host: advertise, port: UInt16(config.httpPort)),
        rtmpAddress: Endpoint(host: advertise, port: UInt16(config.rtmpPort)),
        region: config.region, capacity: UInt32(config.capacity), load: 0, softwareVersion: streamTubeVersion)
    let gossip = GossipNode(settings: GossipSettings(bindHost: config.host, port: config.gossipPort, seeds: seeds,
                                                     config: gossipConfig, keyring: keyring),
                            local: metadata, logger: logger, load: { streams.publishingCount })
    let router = ClusterRouter(view: gossip.view, region: config.region, transport: ClusterTransport(tls: clusterTLS))
    let tokens = ClusterTokens(clusterKeys: keyring.keys, localID: state.nodeID)

    // The media path.
    let store = EdgeStore(directory: URL(fileURLWithPath: state.cacheDir), memoryBudget: config.cacheMemoryMB << 20,
                          diskBudget: config.cacheDiskMB << 20) { message in
        logger.warning("edge store", metadata: ["detail": "\(message)"])
    }
    let edge = EdgeProxy(router: router, cache: store, localID: state.nodeID, logger: logger)
    // Nodes with databases of their own place records with the ring's holders and ask them; on
    // PostgreSQL every node reads the same records, and a miss there is a miss everywhere.
    let ownDatabase = database.engine == .sqlite
    if ownDatabase {
        catalog.lookUpPeers { query in
            await PeerRecords.lookup(query, router: router, client: edge.client, tokens: tokens, localID: state.nodeID)
        }
        catalog.lookUpThumbnails { id, version in
            await PeerThumbnails.lookup(id: id, version: version, router: router, client: edge.client, tokens: tokens, localID: state.nodeID)
        }
    }
    let records = RecordPlacement(catalog: catalog, router: router, client: edge.client, tokens: tokens, localID: state.nodeID,
                                  logger: logger, enabled: ownDatabase)
    catalog.whenChanged { records.tell($0) }
    let replicator = Replicator(router: router, client: edge.client, tokens: tokens, localID: state.nodeID, logger: logger)
    let control = RTMPControl()
    let rtmp = RTMPServer(host: config.host, port: config.rtmpPort,
                          policy: IngestPolicy(streams: streams, cluster: IngestCluster(router: router, tokens: tokens, replicator: replicator)),
                          control: control, clusterTLS: clusterTLS, trustedProxies: trustedProxies, logger: logger)
    var rtmps: RTMPServer?
    if let publicTLS {
        let context: NIOSSLContext
        do { context = try NIOSSLContext(configuration: publicTLS.serverConfiguration()) } catch {
            await database.close()
            throw ConfigurationError("RTMPS: \(error)")
        }
        rtmps = RTMPServer(host: config.host, port: config.rtmpsPort, policy: rtmp.policy, control: control, admission: rtmp.admission,
                           trustedProxies: trustedProxies, tls: context, logger: logger)
    }
    // Private streams: tokens signed with a key derived from the cluster keyring, checked on every node.
    let playbackTokens = PlaybackTokens(clusterKeys: keyring.keys)
    let playback = TokenPlayback(catalog: catalog, tokens: playbackTokens)
    // Payments: prices, orders and the ledger on the platform database; the gateways configured.
    let payments = PaymentBook(database: database, feeBasisPoints: try config.platformFeeBasisPoints())
    let gateways = try config.paymentGateways()
    NodeMetrics.declare(renditions: ladder?.rungs.map(\.name) ?? [], providers: gateways.map(\.name))
    if gateways.contains(where: { $0 is TestGateway }) {
        logger.notice("payments: the built-in test gateway is on: tickets are paid on a page of this node and no money moves",
                      metadata: ["turn off": "--test-payments=off"])
    }
    let issuer = TokenIssuer(tokens: playbackTokens, invited: { stream, viewer in
        (try? await accounts.invitations.isInvitee(stream: stream.id, viewer: viewer)) ?? false
    }, entitled: { stream, account in
        // A ticket for the stream, or the subscription of its channel.
        if (try? await payments.isEntitled(account, to: .stream, stream.id)) == true { return true }
        guard let owner = stream.owner else { return false }
        return (try? await payments.isEntitled(account, to: .channel, owner)) == true
    }, entitledToRecording: { recording, account in
        (try? await payments.isEntitled(account, to: .recording, recording)) == true
    })
    var live = LiveRoutes(streams: streams, edge: edge, info: info, playback: playback)
    // Viewer sessions are counted where media is served, and reported to the database.
    let viewerSessions = ViewerSessions()
    live.sessions = viewerSessions
    let loopLag = EventLoopLag(loops: Array(MultiThreadedEventLoopGroup.singleton.makeIterator()))
    live.joins = JoinGate(policy: JoinAdmission(maxViewers: config.maxViewers, maxLag: config.maxEventLoopLag),
                          viewers: { viewerSessions.count }, lag: { loopLag.current }, logger: logger)
    let viewerFigures = ViewerFigureStore(database: database)
    let viewerReporter = ViewerReporter(sessions: viewerSessions, store: viewerFigures, nodeID: state.nodeID, region: info.region,
                                        owns: { router.ownsLocally($0) }, logger: logger)

    // HTTP: one router, a route collection per feature.
    let httpRouter = Router(context: NodeRequestContext.self)
    httpRouter.add(middleware: ProblemMiddleware())
    httpRouter.add(middleware: SecurityHeadersMiddleware())
    if clusterTLS != nil { httpRouter.add(middleware: ClusterTLSMiddleware()) }
    if !trustedProxies.isEmpty { httpRouter.add(middleware: ClientAddressMiddleware(trusted: trustedProxies)) }
    if publicTLS != nil {
        let origin = accounts.settings.publicURL.hasPrefix("https://") ? accounts.settings.publicURL : nil
        httpRouter.add(middleware: HTTPSPolicyMiddleware(httpsPort: config.httpsPort, redirect: config.httpRedirect, hstsSeconds: config.hstsSeconds,
                                                        publicOrigin: origin))
    }
    httpRouter.add(middleware: MetricsMiddleware())
    httpRouter.add(middleware: CORSMiddleware(allowOrigin: .all, allowHeaders: [.accept, .authorization, .contentType, .origin, .range],
                                              allowMethods: [.get, .head, .post, .patch, .delete, .options], maxAge: .seconds(3600)))
    // Ready once the cluster is joined (another member answered, or none did for 10 s), until SIGTERM.
    let readiness = NodeReadiness(hasSeeds: !seeds.isEmpty, otherMembersAlive: {
        let v = gossip.view.snapshot
        return v.members.filter { $0.status == .alive && $0.id != v.localID }.count
    })
    let folders = [("data", state.dataDir.path), ("cache", state.cacheDir)]
        + (recorder.map { [("recordings", $0.directory)] } ?? [])
    let system = SystemRoutes(streams: streams, info: info, metrics: metrics, readiness: readiness, folders: folders)
    httpRouter.addRoutes(system.collection)
    // What people set on recordings, asked by the media routes on every request; deletions reach every holder.
    let recordingDetails = RecordingCatalog(store: RecordingDetailsStore(database: database), logger: logger)
    let recordingDeletions = RecordingDeletions(recorder: recorder, catalog: recordingDetails, tell: { deleted in
        await RecordingDeletions.tellPeers(deleted, router: router, client: edge.client, tokens: tokens, localID: state.nodeID, logger: logger)
    }, logger: logger)
    let recordingService = RecordingService(store: recordingStore, details: recordingDetails, deletions: recordingDeletions, catalog: catalog,
                                            thumbnails: thumbnails, manifest: { id, holders in
        if let held = recorder?.manifest(id: id) { return held }
        return await PeerRecordingManifests.fetch(id: id, holders: holders, router: router, client: edge.client, tokens: tokens,
                                                  localID: state.nodeID)
    }, logger: logger, tell: { details in
        await PeerRecordingDetails.tell(details, router: router, client: edge.client, tokens: tokens, localID: state.nodeID, logger: logger)
    })
    var routes = OperatorRoutes(streams: streams, thumbnails: thumbnails, cluster: gossip.view, info: info, system: system,
                                playback: issuer, recordings: recordingStore, logger: logger)
    routes.recordingService = recordingService
    // A node with a database of its own knows only its own recording copies: it asks the stream's holders for theirs.
    if ownDatabase {
        routes.peerRecordings = { id in
            await PeerRecordings.lookup(stream: id, router: router, client: edge.client, tokens: tokens, localID: state.nodeID)
        }
    }
    let operatorRoutes = routes
    httpRouter.addRoutes(operatorRoutes.collection(token: state.adminToken), atPath: "/api")
    httpRouter.addRoutes(live.collection)
    let analytics = AnalyticsRoutes(store: viewerFigures, catalog: catalog, playback: playback, recordings: recordingStore,
                                    servesSession: { viewerSessions.serves(stream: $0, session: $1) })
    httpRouter.addRoutes(analytics.operatorCollection(token: state.adminToken), atPath: "/api")
    httpRouter.addRoutes(analytics.collection)
    httpRouter.addRoutes(ThumbnailRoutes(store: thumbnails.store, catalog: catalog, edge: edge, playback: playback, recordIsCurrent: { id in
        guard ownDatabase else { return true }
        let view = router.view.snapshot
        return view.ring.isEmpty || PeerRecords.holders(of: id, ring: view.ring, members: view.members).contains { $0.id.rawValue == state.nodeID }
    }).collection)
    let downloads = recorder.map { RecordingDownloads(recorder: $0, remux: { runs, output in try RecordingRemuxer.remux(runs: runs, to: output) }) }
    var recordingRoutes = RecordingRoutes(recorder: recorder, store: recordingStore, catalog: catalog, edge: edge, playback: playback,
                                          downloads: downloads, details: recordingDetails, thumbnails: thumbnails)
    recordingRoutes.sessions = viewerSessions
    httpRouter.addRoutes(recordingRoutes.collection)
    httpRouter.addRoutes(recordingDeletions.routes(tokens: tokens))
    httpRouter.addRoutes(PeerRecordingManifests.routes(recorder: recorder, tokens: tokens))
    httpRouter.addRoutes(PeerRecordingDetails.routes(catalog: recordingDetails, tokens: tokens))
    // Payment providers' webhooks: signed by the provider, not by a session (no anti-forgery cookie).
    httpRouter.addRoutes(PaymentRoutes(book: payments, stripe: try config.stripeSettings().map(StripeWebhooks.init),
                                       btcpay: try config.btcpaySettings().map { BTCPayWebhooks(gateway: BTCPayGateway(settings: $0)) },
                                       paypal: gateways.lazy.compactMap { $0 as? PayPalGateway }.first.map(PayPalWebhooks.init),
                                       logger: logger).collection)
    httpRouter.addRoutes(ReplicaRoutes.collection(streams: streams, tokens: tokens, router: router))
    httpRouter.addRoutes(PeerRecords.routes(catalog: catalog, tokens: tokens))
    httpRouter.addRoutes(PeerRecordings.routes(store: recordingStore, tokens: tokens))
    httpRouter.addRoutes(PeerThumbnails.routes(catalog: catalog, tokens: tokens))
    let viewers = live.viewers
    let localID = NodeID(state.nodeID)
    // The platform: people's pages and the public API, where a session cookie or an API token
    // says who is calling and a cookie-authenticated change must carry the anti-forgery token.
    let channelRecordings = ChannelRecordings(channels: accounts.channels, catalog: catalog, store: recordingStore, sweeper: sweeper)
    var api = PlatformAPI(service: accounts, operatorRoutes: operatorRoutes, streams: streams, thumbnails: thumbnails,
                          playback: issuer, channelRecordings: channelRecordings, recordings: recordingService, logger: logger)
    api.viewerFigures = viewerFigures
    let platformAPI = api
    let providers: SignInProviders
    do { providers = try SignInProviders(try config.signInProviders(), httpClient: HTTPClient.shared) } catch {
        await database.close()
        throw ConfigurationError("\(error)")
    }
    let renderer = PageRenderer(pages: try Pages(), service: accounts, providers: providers.links)
    let platform = httpRouter.group()
        .add(middleware: CSRFMiddleware(secureCookies: accounts.settings.secureCookies))
        .add(middleware: AccountAuthMiddleware(service: accounts))
    platform.addRoutes(platformAPI.collection, atPath: "/api/v1")
    // Live here: published here, or held as a standby of an origin still publishing it.
    let liveIDs: @Sendable () -> [String] = {
        streams.all.filter { $0.1.status.publishing || ($0.1.isReplica && $0.1.isLive(rendition: LiveStream.sourceRendition)) }.map(\.0)
    }
    let paymentPages = PaymentPages(book: payments, gateways: gateways, service: accounts, catalog: catalog, renderer: renderer,
                                    publicURL: accounts.settings.publicURL, send: try config.sendMail(logger: logger), recording: { id in
        guard let item = try await recordingService.item(id: id) else { return nil }
        var stream = item.stream
        stream.visibility = item.visibility
        return SoldRecording(id: id, title: item.title, stream: stream)
    })
    platform.addRoutes(paymentPages.collection)
    var webRoutes = WebRoutes(catalog: catalog, renderer: renderer, publicURL: accounts.settings.publicURL, playback: issuer,
                                 paywall: { record, request, context in try await paymentPages.paywall(record, request, context) },
                                 recordings: recordingStore, recordingDetails: { try? await recordingDetails.details(id: $0) },
                                 recordingPaywall: { id, title, record, request, context in
                                     try await paymentPages.recordingPaywall(id, title: title, record, request, context)
                                 },
                                 redirect: { viewers?.redirect($0) }, nodes: {
        gossip.view.snapshot.members.filter { $0.id != localID && $0.status == .alive }.map { "http://\($0.metadata.httpAddress)" }
    }, live: liveIDs)
    webRoutes.chat = { record, token, context in
        ChatPanel.live(stream: record.id, csrf: context.csrfToken, token: token, signedIn: context.account != nil)
    }
    webRoutes.chatReplay = { record, startedAt, token in ChatPanel.replay(stream: record.id, startedAt: startedAt, token: token) }
    platform.addRoutes(webRoutes.collection)
    platform.addRoutes(AccountPages(service: accounts, renderer: renderer, studio: StudioSource(catalog: catalog, list: { owner, request in
        let liveNow = Set(liveIDs())
        return catalog.all.filter { $0.owner == owner }.sorted { $0.createdAt > $1.createdAt }.map { r in
            let d = operatorRoutes.describe(r, request: request)
            let health = streams.existing(id: r.id)?.health
            let server = d.rtmpURL.map(studioServer) ?? ""
            return StudioStream(id: r.id, title: r.title, key: r.key, server: server, rtmpURL: d.rtmpURL, watchURL: d.watchURL,
                                live: d.live?.publishing ?? false, status: d.live.map { $0.publishing ? "live" : "\($0.state)" } ?? "offline",
                                advice: health?.advice ?? [],
                                thumbnail: StreamPicture.path(r, live: liveNow.contains(r.id) || thumbnails.store.exists(id: r.id)).map { path in
                                    // A private stream's picture needs a token like its media: the owner's own.
                                    guard r.visibility.isPrivate, let t = playbackTokens.token(stream: r.id, viewer: owner) else { return path }
                                    return path + (path.contains("?") ? "&" : "?") + "token=" + t.token
                                },
                                thumbnailUploaded: r.thumbnail != nil)
        }
    }, create: { title, owner in
        try await platformAPI.create(title: title, owner: owner).id
    }, cohosting: { account, request in
        platformAPI.cohosts.streams(cohostedBy: account).map { r in
            let c = platformAPI.cohosting(r, for: account, request: request)
            return StudioStream(id: r.id, title: r.title, key: c.key, server: c.rtmpURL.map(studioServer) ?? "", rtmpURL: c.rtmpURL,
                                watchURL: c.watchURL, live: c.live, status: c.live ? "live" : "offline", advice: [])
        }
    }, recordings: { owner in try await channelRecordings.figures(owner: owner) },
       setRecordings: { owner, settings in _ = try await channelRecordings.set(owner: owner, settings) }), providers: providers.links, identities: { account in
        try await accounts.identities.identities(account: account).map { ($0.provider, $0.email, $0.createdAt) }
    }).collection)
    platform.addRoutes(ProviderRoutes(service: accounts, renderer: renderer, providers: providers).collection)
    platform.addRoutes(CoHostPages(service: accounts, catalog: catalog, renderer: renderer, send: try config.sendMail(logger: logger)).collection)
    platform.addRoutes(AnalyticsPages(figures: viewerFigures, catalog: catalog, renderer: renderer, recording: { id in
        try await recordingService.item(id: id).map { ($0.stream, $0.title) }
    }).collection)
    platform.addRoutes(InvitationPages(service: accounts, catalog: catalog, renderer: renderer, send: try config.sendMail(logger: logger)).collection)
    let recordingPages = recordingService.pages(token: { stream, viewer in playbackTokens.token(stream: stream, viewer: viewer)?.token })
    platform.addRoutes(ChannelPages(service: accounts, catalog: catalog, renderer: renderer, publicURL: accounts.settings.publicURL,
                                    live: liveIDs, hasThumbnail: { thumbnails.store.exists(id: $0) },
                                    pastBroadcasts: recordingPages.published).collection)
    // A recording sold alone: its price, set by whoever owns its stream, the stream's owner the seller.
    let recordingPrices = RecordingPrices(current: { r in
        try await payments.price(.recording, r.id, plan: .ticket)?.amount
    }, set: { caller, r, amount, currency in
        do {
            let seller = await catalog.find(id: r.streamID)?.owner ?? caller.accountID
            _ = try await payments.setPrice(.recording, r.id, plan: .ticket, seller: seller, amount: try Money.parse(amount, currency: currency))
        } catch let p as PaymentProblem {
            throw Problem.badRequest(p.description)
        }
    })
    platform.addRoutes(RecordingPages(source: recordingPages, renderer: renderer, prices: recordingPrices).collection)

    // Live chat (Chat): each stream's room on its owner by the ring, viewers' WebSockets on any
    // node (relayed to the room's node over a link with a cluster token), kept in the database.
    let chatStore = ChatStore(database: database)
    let chatRooms = ChatRooms(store: chatStore, place: { id in
        if router.ownsLocally(id) { return .here }
        guard let owner = router.placement(of: id)?.owner else { return .here }
        return .node(router.transport.baseURL(for: owner))
    }, token: { stream, path in
        tokens.token(for: ClusterRequest(.chat, "GET", path), scope: stream)
    }, tls: clusterTLS?.clientConfiguration, liveSince: { id in
        recorder?.current(stream: id)?.startedAt.timeIntervalSince1970
    }, follows: { stream, account in
        guard let owner = await catalog.find(id: stream)?.owner else { return false }
        return (try? await accounts.channels.isFollowing(channel: owner, follower: account)) ?? false
    }, logger: logger)
    let mayReadChat: @Sendable (StreamRecord, Substring?) -> Bool = { record, token in playback.allowsPlayback(of: record, token: token) }
    let chatGateway = ChatGateway(rooms: chatRooms, catalog: catalog, tokens: tokens, requiresTLS: clusterTLS != nil,
                                  publicURL: accounts.settings.publicURL, sessionUser: { session in
        guard let found = try? await accounts.caller(sessionToken: session) else { return nil }
        return (found.1.id, found.1.displayName)
    }, mayRead: mayReadChat, logger: logger)
    httpRouter.addRoutes(ChatRoutes(store: chatStore, catalog: catalog, mayRead: mayReadChat).collection)

    // Cached media is answered on the event loop, in front of the router.
    let fastPath = NodeMediaSource(catalog: catalog, edge: edge, playback: playback, sessions: viewerSessions)
    // A connection whose first request asks for a WebSocket may become a chat (ChatGateway
    // decides); every other connection is HTTP/1.1 as before, the media fast path in front.
    let http1 = HTTP1Channel.Configuration(additionalChannelHandlers: [MediaFastPath(source: fastPath)], idleTimeout: .seconds(60))
    let webSocket = WebSocketServerConfiguration(maxFrameSize: ChatGateway.maxFrameBytes, closeTimeout: .seconds(5))
    let http1Channels: @Sendable (@escaping HTTPChannelHandler.Responder) -> UpgradeSniffingChannel = { responder in
        UpgradeSniffingChannel(
            http: HTTP1Channel(responder: responder, configuration: http1),
            webSocket: HTTP1WebSocketUpgradeChannel(responder: responder, configuration: .init(http1: .init(idleTimeout: .seconds(60)), ws: webSocket)) {
                request, channel, _ in await chatGateway.shouldUpgrade(request, channel: channel)
            })
    }
    let http = Application(
        router: httpRouter,
        server: .clusterTLS(clusterTLS, logger: logger, http1Channels),
        configuration: .init(address: .hostname(config.host, port: config.httpPort), serverName: "streamtube"),
        onServerRunning: { channel in
            logger.info("node ready", metadata: [
                "http": "\(channel.localAddress?.description ?? "?")", "rtmpPort": "\(config.rtmpPort)",
                "dataDir": "\(config.dataDir)", "region": "\(config.region)", "streams": "\(catalog.all.count)",
                "gossipPort": "\(config.gossipPort)", "clusterTLS": "\(config.clusterTLS ? "on" : "off")",
            ])
        },
        logger: logger)
    // HTTPS: the same routes, over HTTP/2 or HTTP/1.1 (ALPN), with the node's certificate;
    // HTTP/1.1 as on the plain listener (chat WebSockets, the media fast path).
    var https: Application<RouterResponder<NodeRequestContext>>?
    if let publicTLS {
        do {
            let tls = publicTLS.serverConfiguration()
            _ = try NIOSSLContext(configuration: tls)  // refused here, with the reason, rather than per connection
            https = Application(
                router: httpRouter,
                server: HTTPServerBuilder { responder in
                    try HTTPSChannel(tls: tls, http1: http1Channels(responder), http2: HTTP2Channel(responder: responder))
                },
                configuration: .init(address: .hostname(config.host, port: config.httpsPort), serverName: "streamtube"),
                onServerRunning: { channel in
                    logger.info("https listening", metadata: ["https": "\(channel.localAddress?.description ?? "?")",
                                                              "validUntil": "\(publicTLS.identity.notAfter)"])
                },
                logger: logger)
        } catch {
            await database.close()
            throw ConfigurationError("HTTPS: \(error)")
        }
    }
    let handover = HandoverService(gossip: gossip, rtmp: control, replicator: replicator, logger: logger,
                                   began: { readiness.handoverBegan() })
    let ownership = OwnershipHandover(router: router, rtmp: control, replicator: replicator, logger: logger)
    let replicaSweep = ReplicaSweep(streams: streams, logger: logger)
    var noticeSettings = NoticeSettings()
    guard config.reminderMinutes >= 0, config.missedAfterMinutes >= 1 else {
        await database.close()
        throw ConfigurationError("--reminder-minutes must be at least 0 and --missed-after-minutes at least 1")
    }
    noticeSettings.reminderLead = Double(config.reminderMinutes) * 60
    noticeSettings.missedAfter = Double(config.missedAfterMinutes) * 60
    noticeSettings.publicURL = accounts.settings.publicURL
    let notices = StreamNotices(catalog: catalog, accounts: accounts, settings: noticeSettings, nodeID: state.nodeID,
                                owns: { router.ownsLocally($0) }, isLive: { streams.existing(id: $0)?.status.publishing ?? false },
                                send: try config.sendMail(logger: logger), logger: logger)
    let paymentMail = PaymentMail(book: payments, accounts: accounts, catalog: catalog, publicURL: accounts.settings.publicURL,
                                  send: try config.sendMail(logger: logger), logger: logger,
                                  btcpay: gateways.lazy.compactMap { $0 as? BTCPayGateway }.first)
    let paymentOutbox = PaymentOutbox(database: database, nodeID: state.nodeID, logger: logger) { try await paymentMail.handle($0) }
    // Subscriptions are renewed by the ring's owner of one key; the test gateway pays at once.
    // Those Stripe and PayPal keep are renewed by their webhooks, never charged here (`renewDue`
    // skips them); a BTCPay one by a new invoice each period, mailed, paid by its webhook.
    guard config.subscriptionPeriodSeconds >= 0 else {
        await database.close()
        throw ConfigurationError("--subscription-period-seconds must be 0 (off) or more")
    }
    if config.subscriptionPeriodSeconds > 0 {
        PaymentBook.testPeriod.withLock { $0 = TimeInterval(config.subscriptionPeriodSeconds) }
        logger.notice("payments: subscription periods last \(config.subscriptionPeriodSeconds) s (--subscription-period-seconds, for tests only)")
    }
    let btcpay = gateways.lazy.compactMap { $0 as? BTCPayGateway }.first
    let renewals = SubscriptionRenewals(book: payments, interval: .seconds(config.renewalSeconds), logger: logger,
                                        owns: { router.ownsLocally(PaymentBook.renewalKey) }) { order in
        if order.gateway == "btcpay", let btcpay {
            let channel = (try? await accounts.account(id: order.itemID))?.displayName ?? "the channel"
            return try await btcpay.renew(order, book: payments, title: channel, returnURL: "\(accounts.settings.publicURL)/settings/purchases")
        }
        guard order.gateway == "test" else { return false }
        let outcome = try await payments.apply(TestGateway.renewed(order))
        return outcome == .applied(.paid) || outcome == .duplicate("applied: paid")
    }
    return NodeApplication(router: httpRouter, http: http, https: https, rtmps: rtmps, publicTLS: publicTLS, rtmp: rtmp, gossip: gossip, handover: handover, ownership: ownership, replicaSweep: replicaSweep, records: records, state: state,
                           streams: streams, thumbnails: thumbnails, recorder: recorder, sweeper: sweeper, edge: edge, database: database,
                           catalogChanges: CatalogChanges(catalog: catalog),
                           accounts: accounts, accountChanges: AccountChanges(service: accounts, database: database), notices: notices,
                           paymentOutbox: paymentOutbox, renewals: renewals, recordingDeletions: recordingDeletions,
                           viewerReporter: viewerReporter, chatSweep: ChatSweep(rooms: chatRooms), logger: logger)
}
