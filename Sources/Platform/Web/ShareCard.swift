// ShareCard: what a page tells the sites its link is pasted into (Open Graph and Twitter card
// tags, its canonical URL, its oEmbed endpoint), and the share bar people click. Any page
// with a link worth sharing (a stream's, a channel's) makes one and puts `html` in its
// <head>; everything in it is escaped here, so titles and descriptions may hold anything.
import Catalog
import Foundation

package struct ShareCard: Sendable, Equatable {
    package static let siteName = "StreamTube"
    /// Longer descriptions are cut here (with an ellipsis): cards show two or three lines.
    package static let maxDescription = 300

    package var title: String
    package var description: String
    /// The page's canonical, absolute URL.
    package var url: String
    /// An absolute image URL; nil: none (a `summary` card, not a large image).
    package var image: String?
    /// `og:type`: `video.other` for a stream, `profile` for a channel, `website` else.
    package var type: String
    /// The absolute URL of the page's oEmbed JSON; nil: not offered.
    package var oEmbed: String?
    /// False: search engines are asked not to index the page (`robots: noindex`).
    package var indexable: Bool

    package init(title: String, description: String, url: String, image: String? = nil, type: String = "website",
                 oEmbed: String? = nil, indexable: Bool = true) {
        self.title = title
        self.description = description
        self.url = url
        self.image = image
        self.type = type
        self.oEmbed = oEmbed
        self.indexable = indexable
    }

    /// A stream's card. Public and unlisted streams show their title, description and
    /// thumbnail, and offer oEmbed; unlisted ones are kept out of search engines. A private
    /// stream (invite-only, paid) shows its title only (the page's <title> shows it anyway), a
    /// generic line for a description, no thumbnail (it would show the picture) and no oEmbed
    /// (its embed is refused): a link pasted into a chat tells no more than the title.
    package static func stream(_ r: StreamRecord, publicURL: String) -> ShareCard {
        let url = WatchPage.url(id: r.id, publicURL: publicURL)
        if r.visibility.isPrivate {
            return ShareCard(title: r.title, description: r.visibility == .paid ? "A paid stream on StreamTube: a ticket opens it here."
                                                                                : "A private stream on StreamTube: invited viewers watch it here.",
                             url: url, type: "video.other", indexable: false)
        }
        let description = r.description.isEmpty ? "A live stream on StreamTube." : r.description
        return ShareCard(title: r.title, description: description, url: url, image: StreamPicture.url(r, publicURL: publicURL),
                         type: "video.other", oEmbed: OEmbed.discovery(url: url, publicURL: publicURL),
                         indexable: r.visibility == .public)
    }

    /// The description on one line, at most `maxDescription` characters.
    var summary: String {
        let line = description.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: " ")
        return line.count <= Self.maxDescription ? line : String(line.prefix(Self.maxDescription - 1)).trimmingCharacters(in: .whitespaces) + "…"
    }

    /// The tags for the page's <head>.
    package var html: String {
        let e = WatchPage.escape
        var lines = [
            #"<link rel="canonical" href="\#(e(url))">"#,
            #"<meta name="description" content="\#(e(summary))">"#,
            #"<meta property="og:site_name" content="\#(Self.siteName)">"#,
            #"<meta property="og:type" content="\#(e(type))">"#,
            #"<meta property="og:title" content="\#(e(title))">"#,
            #"<meta property="og:description" content="\#(e(summary))">"#,
            #"<meta property="og:url" content="\#(e(url))">"#,
        ]
        if let image { lines.append(#"<meta property="og:image" content="\#(e(image))">"#) }
        lines += [
            #"<meta name="twitter:card" content="\#(image == nil ? "summary" : "summary_large_image")">"#,
            #"<meta name="twitter:title" content="\#(e(title))">"#,
            #"<meta name="twitter:description" content="\#(e(summary))">"#,
        ]
        if let image { lines.append(#"<meta name="twitter:image" content="\#(e(image))">"#) }
        if let oEmbed {
            lines.append(#"<link rel="alternate" type="application/json+oembed" href="\#(e(oEmbed))" title="\#(e(title))">"#)
        }
        if !indexable { lines.append(#"<meta name="robots" content="noindex">"#) }
        return lines.joined(separator: "\n")
    }

    // MARK: Share links

    /// A place to share a link: plain links, nothing is loaded from those sites.
    package struct Link: Sendable, Equatable {
        package var name: String
        package var href: String
        /// Opened in a new tab (the sites); mail opens the mail app.
        package var newTab: Bool
    }

    /// Mail, X, Facebook and LinkedIn, each with this card's URL (and title where the site takes one).
    package var links: [Link] {
        let u = Self.encode(url), t = Self.encode(title)
        return [
            Link(name: "Email", href: "mailto:?subject=\(t)&body=\(Self.encode(title + "\n" + url))", newTab: false),
            Link(name: "X", href: "https://x.com/intent/post?url=\(u)&text=\(t)", newTab: true),
            Link(name: "Facebook", href: "https://www.facebook.com/sharer/sharer.php?u=\(u)", newTab: true),
            Link(name: "LinkedIn", href: "https://www.linkedin.com/sharing/share-offsite/?url=\(u)", newTab: true),
        ]
    }

    /// The share bar: the links, a "Copy link" button and, given one, a "Copy embed code"
    /// button with the code shown for copying by hand. The buttons are site.js's `data-copy`
    /// ones: the page includes `Pages.scriptPath`.
    package func shareBar(embedCode: String? = nil) -> String {
        let e = WatchPage.escape
        let links = self.links.map { (l: Link) -> String in
            let target = l.newTab ? #" target="_blank" rel="noopener""# : ""
            return #"<li><a href="\#(e(l.href))"\#(target)>\#(l.name == "Email" ? "Email" : "Share on " + l.name)</a></li>"#
        }.joined(separator: "\n    ")
        var copy = #"<li><button type="button" data-copy="\#(e(url))">Copy link</button></li>"#
        var code = ""
        if let embedCode {
            copy += "\n    " + #"<li><button type="button" data-copy-from="embed-code">Copy embed code</button></li>"#
            code = "\n  " + #"<details class="embed"><summary>Embed code</summary><pre><code id="embed-code">\#(e(embedCode))</code></pre></details>"#
        }
        return """
        <section class="share" aria-label="Share">
          <ul>
            \(links)
            \(copy)
          </ul>\(code)
        </section>
        """
    }

    /// Percent-encoded for a query value: everything but RFC 3986's unreserved characters.
    package static func encode(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ""
    }

    static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
}
