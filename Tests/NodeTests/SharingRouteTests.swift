// Sharing: the watch page's card and share bar, the embed page and its framing rule, oEmbed.
import Foundation
import HTTPSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Web
import XCTest
@testable import App

final class SharingRouteTests: XCTestCase {
    static let base = "https://stream.example.com"

    func withRouter(_ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let app = try await RouteTests.makeApp(publicURL: Self.base)
        do {
            try await app.http.test(.router) { client in try await body(client) }
        } catch {
            await app.close()
            throw error
        }
        await app.close()
    }

    struct Made: Decodable { let id: String }

    static func create(_ client: any TestClientProtocol, _ fields: [String: String]) async throws -> String {
        let body = try JSONEncoder().encode(fields)
        return try await client.execute(uri: "/api/streams", method: .post, headers: RouteTests.operatorHeaders,
                                        body: ByteBuffer(bytes: body)) { r in
            XCTAssertEqual(r.status, .created, String(buffer: r.body))
            return try JSONDecoder().decode(Made.self, from: Data(buffer: r.body)).id
        }
    }

    func testTheWatchPageCarriesItsCardAndShareBar() async throws {
        try await withRouter { client in
            let id = try await Self.create(client, ["title": #"Say "hi" <b>&</b>"#, "description": "Line one\nLine <two> & 'three'"])
            try await client.execute(uri: "/watch/\(id)", method: .get) { r in
                let html = String(buffer: r.body)
                let url = "\(Self.base)/watch/\(id)"
                for tag in [#"<meta property="og:title" content="Say &quot;hi&quot; &lt;b&gt;&amp;&lt;/b&gt;">"#,
                            #"<meta property="og:description" content="Line one Line &lt;two&gt; &amp; &#39;three&#39;">"#,
                            #"<meta property="og:type" content="video.other">"#, #"<meta property="og:url" content="\#(url)">"#,
                            #"<meta property="og:image" content="\#(Self.base)/thumbnails/\#(id).jpg">"#,
                            #"<meta property="og:site_name" content="StreamTube">"#,
                            #"<meta name="twitter:card" content="summary_large_image">"#, #"<link rel="canonical" href="\#(url)">"#,
                            #"<link rel="alternate" type="application/json+oembed" href="\#(Self.base)/oembed?url=https%3A%2F%2Fstream.example.com%2Fwatch%2F\#(id)&amp;format=json""#,
                            #"href="https://www.facebook.com/sharer/sharer.php?u=https%3A%2F%2Fstream.example.com%2Fwatch%2F\#(id)" target="_blank" rel="noopener""#,
                            #"<button type="button" data-copy="\#(url)">Copy link</button>"#,
                            #"data-copy-from="embed-code""#, "&lt;iframe src=&quot;\(Self.base)/embed/\(id)&quot;",
                            #"<script src="\#(Pages.scriptPath)" defer></script>"#] {
                    XCTAssertTrue(html.contains(tag), tag)
                }
                XCTAssertFalse(html.contains("noindex"), "a public stream may be indexed")
                XCTAssertEqual(r.headers[.xFrameOptions], "DENY")
                XCTAssertTrue(r.headers[.contentSecurityPolicy]!.hasSuffix("frame-ancestors 'none'"))
            }
        }
    }

    func testAPrivateStreamsCardTellsOnlyItsTitle() async throws {
        try await withRouter { client in
            let id = try await Self.create(client, ["title": "Secret show", "description": "the secret plot", "visibility": "invite-only"])
            try await client.execute(uri: "/watch/\(id)", method: .get) { r in
                let html = String(buffer: r.body)
                XCTAssertFalse(html.contains("secret plot"))
                XCTAssertFalse(html.contains("og:image"))
                XCTAssertFalse(html.contains("oembed"))
                XCTAssertFalse(html.contains("embed-code"), "no embed code for a stream that cannot be embedded")
                XCTAssertTrue(html.contains(#"<meta name="robots" content="noindex">"#))
                XCTAssertTrue(html.contains(#"<meta name="twitter:card" content="summary">"#))
                XCTAssertTrue(html.contains(#"<meta property="og:title" content="Secret show">"#))
            }
            try await client.execute(uri: "/embed/\(id)", method: .get) { r in
                XCTAssertEqual(r.status, .forbidden)
                XCTAssertTrue(String(buffer: r.body).contains("This stream is private"))
                XCTAssertNil(r.headers[.xFrameOptions], "the refusal shows in the frame")
            }
            try await client.execute(uri: "/oembed?url=\(ShareCard.encode("\(Self.base)/watch/\(id)"))", method: .get) { r in
                XCTAssertEqual(r.status, .notFound)
            }
            let unlisted = try await Self.create(client, ["title": "By link", "visibility": "unlisted"])
            try await client.execute(uri: "/watch/\(unlisted)", method: .get) { r in
                let html = String(buffer: r.body)
                XCTAssertTrue(html.contains("noindex"), "an unlisted stream is kept out of search engines")
                XCTAssertTrue(html.contains("og:image"), "and shared like any other")
            }
        }
    }

    func testTheEmbedPageMayBeFramedAndNothingElse() async throws {
        try await withRouter { client in
            let id = try await Self.create(client, ["title": "Framed <i>"])
            try await client.execute(uri: "/embed/\(id)", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertNil(r.headers[.xFrameOptions])
                XCTAssertNil(r.headers[HTTPField.Name("X-StreamTube-Framing")!], "the route's word stays in the node")
                let csp = try XCTUnwrap(r.headers[.contentSecurityPolicy])
                XCTAssertTrue(csp.hasSuffix("frame-ancestors *"), csp)
                XCTAssertFalse(csp.contains("frame-ancestors 'none'"), csp)
                let html = String(buffer: r.body)
                XCTAssertTrue(html.contains(#"data-stream="\#(id)""#))
                XCTAssertTrue(html.contains("Framed &lt;i&gt; · StreamTube"))
                let nonce = csp.components(separatedBy: "'nonce-")[1].prefix { $0 != "'" }
                XCTAssertTrue(html.contains(#"<script type="module" nonce="\#(nonce)">"#))
                XCTAssertTrue(html.contains("import { attach } from '\(WatchPage.pagePath)'"))
            }
            try await client.execute(uri: "/embed/nosuch", method: .get) { r in
                XCTAssertEqual(r.status, .notFound)
                XCTAssertNil(r.headers[.xFrameOptions])
            }
            for uri in ["/watch/\(id)", "/", "/signin", "/watch/nosuch"] {
                try await client.execute(uri: uri, method: .get) { r in
                    XCTAssertEqual(r.headers[.xFrameOptions], "DENY", uri)
                    XCTAssertTrue(r.headers[.contentSecurityPolicy]!.hasSuffix("frame-ancestors 'none'"), uri)
                }
            }
            try await client.execute(uri: WatchPage.pagePath, method: .get) { r in
                XCTAssertEqual(r.headers[.cacheControl], "public, max-age=31536000, immutable")
                XCTAssertEqual(Array(buffer: r.body), WatchPage.pageScript)
            }
        }
    }

    func testOEmbed() async throws {
        try await withRouter { client in
            let id = try await Self.create(client, ["title": #"A "quoted" <show>"#])
            let url = ShareCard.encode("\(Self.base)/watch/\(id)")
            try await client.execute(uri: "/oembed?url=\(url)&format=json&maxwidth=320", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any])
                XCTAssertEqual(o["type"] as? String, "video")
                XCTAssertEqual(o["version"] as? String, "1.0")
                XCTAssertEqual(o["title"] as? String, #"A "quoted" <show>"#)
                XCTAssertEqual(o["provider_name"] as? String, "StreamTube")
                XCTAssertEqual(o["provider_url"] as? String, Self.base + "/")
                XCTAssertEqual(o["width"] as? Int, 320)
                XCTAssertEqual(o["height"] as? Int, 180)
                XCTAssertEqual(o["thumbnail_url"] as? String, "\(Self.base)/thumbnails/\(id).jpg")
                let html = try XCTUnwrap(o["html"] as? String)
                XCTAssertTrue(html.hasPrefix(#"<iframe src="\#(Self.base)/embed/\#(id)" width="320" height="180" title="A &quot;quoted&quot; &lt;show&gt; · StreamTube""#), html)
            }
            try await client.execute(uri: "/oembed?url=\(url)&maxheight=90", method: .get) { r in
                let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any])
                XCTAssertEqual(o["width"] as? Int, 160)
                XCTAssertEqual(o["height"] as? Int, 90)
            }
            for (query, status) in [("url=\(url)&format=xml", HTTPResponse.Status.notImplemented),
                                    ("url=\(ShareCard.encode("https://elsewhere.example/watch/\(id)"))", .badRequest),
                                    ("url=\(ShareCard.encode("\(Self.base)/studio"))", .badRequest), ("", .badRequest),
                                    ("url=\(url)&maxwidth=-3", .badRequest),
                                    ("url=\(ShareCard.encode("\(Self.base)/watch/nosuchstream"))", .notFound)] {
                try await client.execute(uri: "/oembed?\(query)", method: .get) { r in
                    XCTAssertEqual(r.status, status, query)
                }
            }
        }
    }

    func testWatchURLsOEmbedAccepts() {
        let base = "https://stream.example.com"
        XCTAssertEqual(OEmbed.streamID(in: "https://stream.example.com/watch/abc?x=1#t", publicURL: base), "abc")
        XCTAssertEqual(OEmbed.streamID(in: "HTTPS://Stream.Example.com:443/watch/abc/", publicURL: base), "abc")
        XCTAssertNil(OEmbed.streamID(in: "http://stream.example.com/watch/abc", publicURL: base))
        XCTAssertNil(OEmbed.streamID(in: "https://stream.example.com:8443/watch/abc", publicURL: base))
        XCTAssertNil(OEmbed.streamID(in: "https://user@stream.example.com/watch/abc", publicURL: base))
        XCTAssertNil(OEmbed.streamID(in: "https://stream.example.com/watch/a%2Fb", publicURL: base))
        XCTAssertNil(OEmbed.streamID(in: "https://stream.example.com/watch/abc/calendar.ics", publicURL: base))
        XCTAssertEqual(OEmbed.streamID(in: "https://x.example/tube/watch/abc", publicURL: "https://x.example/tube"), "abc")
    }
}
