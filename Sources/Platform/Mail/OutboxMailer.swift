// OutboxMailer: writes each message as an .eml file instead of sending it.
import Foundation
import Logging

/// The mailer when no SMTP server is configured: each message becomes a file in the outbox
/// folder (made 0700; files 0600, written whole then renamed into place, so a reader never
/// sees half a message). The log says a message was written, where and to whom; never its
/// body, which carries single-use links.
package struct OutboxMailer: Mailer {
    package let folder: String
    private let logger: Logger

    package init(folder: String, logger: Logger) throws {
        self.folder = folder
        self.logger = logger
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: folder)
        } catch {
            throw MailError.outbox(path: folder, why: error.localizedDescription)
        }
    }

    package func send(_ message: MailMessage) async throws {
        _ = try await deliver(message)
    }

    package func deliver(_ message: MailMessage) async throws -> MailDelivery {
        let now = Date()
        let messageID = message.makeMessageID()
        let data = Array(message.rendered(date: now, messageID: messageID).utf8)
        // Sortable by time; the random part keeps two messages of the same millisecond apart.
        let stamp = Int64((now.timeIntervalSince1970 * 1000).rounded())
        let name = "\(stamp)-\(messageID.dropFirst().prefix(12)).eml"
        let path = (folder as NSString).appendingPathComponent(name)
        try Self.writeFile(data, to: path)
        logger.info("mail written to the outbox", metadata: [
            "mail.path": .string(path),
            "mail.to": .string(message.to.map(\.address).joined(separator: ",")),
            "mail.message_id": .string(messageID),
        ])
        return MailDelivery("written to \(path)", file: path)
    }

    /// Creates `path.tmp` 0600 (never wider, not even for a moment), writes it, renames it.
    static func writeFile(_ bytes: [UInt8], to path: String) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw MailError.outbox(path: temporary, why: String(cString: strerror(errno))) }
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                let why = String(cString: strerror(errno))
                close(fd)
                unlink(temporary)
                throw MailError.outbox(path: temporary, why: why)
            }
            written += n
        }
        let synced = fsync(fd) == 0
        guard close(fd) == 0, synced, rename(temporary, path) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(temporary)
            throw MailError.outbox(path: path, why: why)
        }
    }
}
