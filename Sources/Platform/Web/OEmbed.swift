// OEmbed: the oEmbed 1.0 answer (https://oembed.com) for a stream's watch URL: a `video`
// whose `html` is an iframe of the embed page. Pure: the route parses the request, asks
// here, and encodes.
import Catalog
import Foundation

package struct OEmbed: Codable, Sendable, Equatable {
    package var type = "video"
    package var version = "1.0"
    package var title: String
    package var providerName = ShareCard.siteName
    package var providerURL: String
    package var html: String
    package var width: Int
    package var height: Int
    package var thumbnailURL: String
    package var thumbnailWidth: Int
    package var thumbnailHeight: Int
    /// The stream's channel (its broadcaster's name and page); none for the operator's streams.
    package var authorName: String?
    package var authorURL: String?
    package var cacheAge = 300

    enum CodingKeys: String, CodingKey {
        case type, version, title, html, width, height
        case providerName = "provider_name", providerURL = "provider_url", thumbnailURL = "thumbnail_url"
        case thumbnailWidth = "thumbnail_width", thumbnailHeight = "thumbnail_height", cacheAge = "cache_age"
        case authorName = "author_name", authorURL = "author_url"
    }

    /// The player's size when the consumer sets no bounds (16:9).
    package static let width = 640, height = 360
    /// The thumbnails' bound (`/thumbnails/{id}.jpg` is at most 640x360).
    package static let thumbnailWidth = 640, thumbnailHeight = 360

    /// Why a request gets no answer, as the spec wants it told.
    package enum Refusal: Error, Equatable {
        /// 400: `url` is missing or not one of this platform's watch URLs; a bad maxwidth/maxheight.
        case badRequest(String)
        /// 404: no such stream, or one that cannot be embedded (private).
        case notFound
        /// 501: a format other than JSON.
        case notImplemented(String)
    }

    /// The stream id a watch URL names: `{publicURL}/watch/{id}` (scheme, host and port as the
    /// public URL has them; a query or fragment is ignored); nil for any other URL.
    package static func streamID(in url: String, publicURL: String) -> String? {
        guard let u = URLComponents(string: url), let base = URLComponents(string: publicURL),
              u.scheme?.lowercased() == base.scheme?.lowercased(), u.host?.lowercased() == base.host?.lowercased(),
              effectivePort(u) == effectivePort(base), u.user == nil, u.password == nil else { return nil }
        let prefix = (base.percentEncodedPath.hasSuffix("/") ? String(base.percentEncodedPath.dropLast()) : base.percentEncodedPath) + "/watch/"
        let path = u.percentEncodedPath
        guard path.hasPrefix(prefix) else { return nil }
        var id = Substring(path.dropFirst(prefix.count))
        if id.hasSuffix("/") { id = id.dropLast() }
        return StreamIdentifiers.isWellFormed(id) ? String(id) : nil
    }

    static func effectivePort(_ u: URLComponents) -> Int? {
        u.port ?? (u.scheme?.lowercased() == "https" ? 443 : u.scheme?.lowercased() == "http" ? 80 : nil)
    }

    /// The player's size within the consumer's bounds, kept 16:9.
    package static func size(maxWidth: Int?, maxHeight: Int?) -> (width: Int, height: Int) {
        var w = width, h = height
        if let maxWidth, maxWidth < w { w = maxWidth; h = w * 9 / 16 }
        if let maxHeight, maxHeight < h { h = maxHeight; w = h * 16 / 9 }
        return (max(w, 1), max(h, 1))
    }

    /// The answer for a request's query values (`url`, `format`, `maxwidth`, `maxheight`);
    /// `author`: the stream's channel, if it has one.
    package static func answer(url: String?, format: String?, maxWidth: String?, maxHeight: String?, publicURL: String,
                               find: (String) async -> StreamRecord?,
                               author: (StreamRecord) async -> (name: String, url: String)? = { _ in nil }) async throws(Refusal) -> OEmbed {
        if let format, format.lowercased() != "json" { throw .notImplemented("only format=json is served, not \(format.prefix(20))") }
        guard let url, !url.isEmpty else { throw .badRequest("give the watch page's address as url") }
        guard let id = streamID(in: url, publicURL: publicURL) else {
            throw .badRequest("url must be a watch page of this platform: \(publicURL)/watch/{id}")
        }
        func bound(_ raw: String?, _ name: String) throws(Refusal) -> Int? {
            guard let raw else { return nil }
            guard let n = Int(raw), n > 0 else { throw .badRequest("\(name) must be a positive whole number of pixels") }
            return n
        }
        let (w, h) = size(maxWidth: try bound(maxWidth, "maxwidth"), maxHeight: try bound(maxHeight, "maxheight"))
        guard let record = await find(id), !record.visibility.isPrivate else { throw .notFound }
        let channel = await author(record)
        return OEmbed(title: record.title, providerURL: publicURL + "/",
                      html: EmbedPage.code(id: record.id, title: record.title, publicURL: publicURL, width: w, height: h),
                      width: w, height: h, thumbnailURL: StreamPicture.url(record, publicURL: publicURL),
                      thumbnailWidth: thumbnailWidth, thumbnailHeight: thumbnailHeight, authorName: channel?.name, authorURL: channel?.url)
    }

    /// The discovery link's target for a watch URL.
    package static func discovery(url: String, publicURL: String) -> String {
        "\(publicURL)/oembed?url=\(ShareCard.encode(url))&format=json"
    }
}
