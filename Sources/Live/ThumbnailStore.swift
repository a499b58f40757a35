// ThumbnailStore: the thumbnails this node keeps, one folder of JPEGs of our own making
// (`DATA_DIR/thumbnails`): `{id}.jpg` taken from the live stream, `{id}.uploaded.jpg` sent by
// the stream's owner, which wins while it exists. Files are written aside and renamed, so a
// reader never sees half a picture; folder 0700, files 0600, like the node's other files.
import Catalog
import Foundation

package final class ThumbnailStore: Sendable {
    /// One kept thumbnail: its bytes and a validator for conditional requests.
    package struct Thumbnail: Sendable {
        package var bytes: [UInt8]
        package var etag: String
        package var uploaded: Bool
    }

    package enum Kind: String, Sendable {
        case live, uploaded
    }

    package let directory: URL

    /// A thumbnail that could not be kept (the folder is full or not writable).
    package struct WriteError: Error, CustomStringConvertible {
        package var path: String
        package var reason: String
        package var description: String { "cannot write \(path): \(reason)" }
    }

    /// Makes the folder if needed.
    package init(directory: URL) throws {
        self.directory = directory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: directory.path)
    }

    private func url(_ id: String, _ kind: Kind) -> URL? {
        // Only a well-formed id ever names a file: no path can be made of a request.
        guard StreamIdentifiers.isWellFormed(Substring(id)) else { return nil }
        return directory.appendingPathComponent(kind == .uploaded ? "\(id).uploaded.jpg" : "\(id).jpg")
    }

    /// Keeps `jpeg` as the stream's live or uploaded thumbnail, replacing the one before whole.
    package func save(_ jpeg: [UInt8], id: String, kind: Kind) throws {
        guard let target = url(id, kind) else { throw WriteError(path: id, reason: "not a stream id") }
        let temporary = directory.appendingPathComponent(".\(id).\(kind.rawValue).\(UInt64.random(in: 0...UInt64.max)).tmp")
        do {
            try Data(jpeg).write(to: temporary, options: .withoutOverwriting)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: temporary.path)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw WriteError(path: temporary.path, reason: error.localizedDescription)
        }
        guard rename(temporary.path, target.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw WriteError(path: target.path, reason: reason)
        }
    }

    /// Forgets the uploaded thumbnail (the live one shows again). False when there was none.
    @discardableResult
    package func remove(id: String, kind: Kind) -> Bool {
        guard let target = url(id, kind) else { return false }
        return unlink(target.path) == 0
    }

    /// The thumbnail shown for a stream: the uploaded one, else the live one.
    package func current(id: String) -> Thumbnail? {
        for kind in [Kind.uploaded, .live] {
            guard let u = url(id, kind), let data = FileManager.default.contents(atPath: u.path), !data.isEmpty else { continue }
            let attributes = try? FileManager.default.attributesOfItem(atPath: u.path)
            let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            let etag = "\"\(kind == .uploaded ? "u" : "l")-\(String(UInt64(modified * 1000), radix: 36))-\(String(data.count, radix: 36))\""
            return Thumbnail(bytes: [UInt8](data), etag: etag, uploaded: kind == .uploaded)
        }
        return nil
    }

    /// Whether a stream has a thumbnail here (for the pages: an image is only named when it exists).
    package func exists(id: String) -> Bool {
        [Kind.uploaded, .live].contains { kind in url(id, kind).map { FileManager.default.fileExists(atPath: $0.path) } ?? false }
    }

    /// Whether the stream's owner uploaded the thumbnail shown.
    package func isUploaded(id: String) -> Bool {
        url(id, .uploaded).map { FileManager.default.fileExists(atPath: $0.path) } ?? false
    }
}
