// StreamPicture: which picture a page shows for a stream, decided from what this node already
// knows, with no request to anyone while the page renders: the uploaded picture its record names
// (a versioned URL: a browser keeps it until the record names another), else, when the stream is
// live or this node took a picture of it, the live picture at `/thumbnails/{id}.jpg` (the
// thumbnail route answers it on any node, asking the origin if need be), else none.
import Catalog

package enum StreamPicture {
    /// The path of the stream's picture for an `<img>`, or nil: none to show.
    /// `live`: the stream is live as this node knows it, or this node holds a picture of it.
    package static func path(_ r: StreamRecord, live: Bool) -> String? {
        if let version = r.thumbnail { return "/thumbnails/\(r.id).jpg?v=\(version)" }
        return live ? "/thumbnails/\(r.id).jpg" : nil
    }

    /// The absolute URL a share card or oEmbed names: the uploaded picture's versioned URL, else
    /// the unversioned one (the live picture, when there is one).
    package static func url(_ r: StreamRecord, publicURL: String) -> String {
        publicURL + (path(r, live: true) ?? "")
    }

    /// A template's values for a stream's picture: `thumbnail` (whether there is one) and `thumbnailSrc`.
    static func values(_ r: StreamRecord, live: Bool) -> [String: Any] {
        let p = path(r, live: live)
        return ["thumbnail": p != nil, "thumbnailSrc": p ?? ""]
    }
}
