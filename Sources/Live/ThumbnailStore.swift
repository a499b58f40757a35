// ThumbnailStore: the pictures this node took of the live streams it is the origin of, one
// folder of JPEGs of our own making (`DATA_DIR/thumbnails/{id}.jpg`). Uploaded pictures are not
// here: they are kept with the stream's record (`StreamCatalog.setThumbnail`), so that every
// node has them. Files are written aside and renamed, so a reader never sees half a picture;
// folder 0700, files 0600, like the node's other files.
import Catalog
import Foundation

package final class ThumbnailStore: Sendable {
    /// One kept thumbnail: its bytes and a validator for conditional requests.
    package struct Thumbnail: Sendable {
        package var bytes: [UInt8]
        package var etag: String
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

    private func url(_ id: String) -> URL? {
        // Only a well-formed id ever names a file: no path can be made of a request.
        guard StreamIdentifiers.isWellFormed(Substring(id)) else { return nil }
        return directory.appendingPathComponent("\(id).jpg")
    }

    /// Keeps `jpeg` as the stream's live thumbnail, replacing the one before whole.
    package func save(_ jpeg: [UInt8], id: String) throws {
        guard let target = url(id) else { throw WriteError(path: id, reason: "not a stream id") }
        let temporary = directory.appendingPathComponent(".\(id).\(UInt64.random(in: 0...UInt64.max)).tmp")
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

    /// Forgets the stream's live picture. False when there was none.
    @discardableResult
    package func remove(id: String) -> Bool {
        guard let target = url(id) else { return false }
        return unlink(target.path) == 0
    }

    /// The latest picture of the live stream taken here.
    package func current(id: String) -> Thumbnail? {
        guard let u = url(id), let data = FileManager.default.contents(atPath: u.path), !data.isEmpty else { return nil }
        let attributes = try? FileManager.default.attributesOfItem(atPath: u.path)
        let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        let etag = "\"l-\(String(UInt64(modified * 1000), radix: 36))-\(String(data.count, radix: 36))\""
        return Thumbnail(bytes: [UInt8](data), etag: etag)
    }

    /// Whether this node has a picture of the live stream (for the pages, with what the record says).
    package func exists(id: String) -> Bool {
        url(id).map { FileManager.default.fileExists(atPath: $0.path) } ?? false
    }
}
