// MailError: what is wrong with a message, or with writing it to the outbox.

/// A message that cannot be made or kept. Nothing is sent when one is thrown.
package enum MailError: Error, Equatable, CustomStringConvertible {
    /// A CR or LF in a header value: it would let the text add headers of its own (header injection).
    case headerInjection(field: String)
    /// Not a plain `local@domain` address.
    case badAddress(String)
    case noRecipients
    /// The outbox folder or a file in it could not be written.
    case outbox(path: String, why: String)
    /// A setting the mailer cannot work with (an unknown security mode, a port out of range...).
    case badSetting(String)

    package var description: String {
        switch self {
        case .headerInjection(let field):
            return "mail refused: the \(field) contains a line break (CR or LF), which could add headers of its own; nothing was sent"
        case .badAddress(let a): return "mail refused: \"\(a)\" is not a plain email address (local@domain)"
        case .noRecipients: return "mail refused: no recipient"
        case .outbox(let path, let why): return "cannot write mail to the outbox \(path): \(why)"
        case .badSetting(let why): return "mail settings: \(why)"
        }
    }
}
