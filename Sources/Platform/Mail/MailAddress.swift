// MailAddress: one mailbox, `addr@domain` or `Display Name <addr@domain>`.
import Foundation

/// A mailbox: an address (`local@domain`, ASCII) and an optional display name (any text; it is
/// encoded per RFC 2047 when it is not plain ASCII). Made only from text that cannot break a
/// header: a CR or LF anywhere is refused, never sent.
package struct MailAddress: Sendable, Hashable, CustomStringConvertible {
    /// `local@domain`, as it goes in `MAIL FROM:<...>` and `RCPT TO:<...>`.
    package let address: String
    package let displayName: String?

    /// Parses `addr@domain`, `<addr@domain>` or `Name <addr@domain>` (the name may be quoted).
    package init(_ text: String) throws(MailError) {
        try MailHeaders.refuseLineBreaks(text, field: "address")
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.hasSuffix(">"), let open = trimmed.lastIndex(of: "<") {
            var name = trimmed[..<open].trimmingCharacters(in: .whitespaces)
            if name.count >= 2, name.hasPrefix("\""), name.hasSuffix("\"") {
                name = String(name.dropFirst().dropLast())
                    .replacingOccurrences(of: "\\\"", with: "\"").replacingOccurrences(of: "\\\\", with: "\\")
            }
            let inner = String(trimmed[trimmed.index(after: open)..<trimmed.index(before: trimmed.endIndex)])
            try self.init(address: inner, displayName: name.isEmpty ? nil : name)
        } else {
            try self.init(address: trimmed, displayName: nil)
        }
    }

    /// An address and a display name given apart.
    package init(address: String, displayName: String? = nil) throws(MailError) {
        try MailHeaders.refuseLineBreaks(address, field: "address")
        if let displayName { try MailHeaders.refuseLineBreaks(displayName, field: "display name") }
        guard Self.isPlainAddress(address) else { throw MailError.badAddress(address) }
        self.address = address
        self.displayName = displayName
    }

    /// The part after the `@` (the Message-ID's right side when this is the sender).
    package var domain: String { String(address[address.index(after: address.lastIndex(of: "@")!)...]) }

    package var description: String {
        displayName.map { "\($0) <\(address)>" } ?? address
    }

    /// As it goes in a From, To or Reply-To header: the name quoted or RFC 2047-encoded as needed.
    var headerForm: String {
        guard let name = displayName, !name.isEmpty else { return address }
        return "\(MailHeaders.phrase(name)) <\(address)>"
    }

    /// Printable ASCII other than these may be in a local part.
    private static let specials = Set("<>()[]\\,;:\"@ ".utf8)

    /// A plain ASCII addr-spec: one `@`, a local part of printable characters other than
    /// specials, a domain of letters, digits, dots and hyphens. No SMTPUTF8: the platform
    /// sends to ordinary addresses, and a stranger one is refused rather than mangled.
    static func isPlainAddress(_ s: String) -> Bool {
        guard s.utf8.count <= 254, let at = s.firstIndex(of: "@") else { return false }
        let local = s[..<at].utf8, domain = s[s.index(after: at)...].utf8
        guard !local.isEmpty, local.count <= 64, !domain.isEmpty, domain.first != UInt8(ascii: "."),
              domain.last != UInt8(ascii: "."), local.first != UInt8(ascii: "."), local.last != UInt8(ascii: ".")
        else { return false }
        guard local.allSatisfy({ $0 > 0x20 && $0 < 0x7F && !specials.contains($0) }) else { return false }
        return domain.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == UInt8(ascii: "-") || b == UInt8(ascii: ".")
        }
    }
}
