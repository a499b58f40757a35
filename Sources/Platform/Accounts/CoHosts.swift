// Co-hosts of a stream, as people manage them: its owner names another account (by email or
// channel handle) to broadcast into it with a key of their own, hands the stream to one of them
// or takes it back, and removes them; a co-host sees the streams they co-host and can give their
// key a new one. What is stored, and how every node hears of it at once, is the catalog's
// (`StreamCatalog.addCohost`...); this is the one place the studio and the API both call.
import Catalog
import Foundation
import HTTPSupport

/// A co-host as the studio and the API show one.
package struct CoHostEntry: Codable, Equatable, Sendable {
    package var account: String
    package var displayName: String
    package var handle: String?
    package var addedAt: Date
    /// The stream is handed to them.
    package var onAir: Bool
}

package struct CoHosts: Sendable {
    let service: AccountService
    let catalog: StreamCatalog

    package init(service: AccountService, catalog: StreamCatalog) {
        self.service = service
        self.catalog = catalog
    }

    /// The account `name` stands for: an email address, or a channel handle (with or without `@`).
    package func account(named raw: String) async throws -> Account {
        let name = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, name.count <= 254 else { throw AccountProblem(.invalid, "give the co-host's email address or channel handle") }
        var found: Account?
        if name.contains("@"), !name.hasPrefix("@") {
            found = try await service.accounts.account(email: name)
        } else {
            let handle = name.hasPrefix("@") ? String(name.dropFirst()) : name
            if let id = try await service.channels.account(handle: handle) { found = try await service.account(id: id) }
        }
        guard let found else {
            throw AccountProblem(.notFound, "no account has that email address or handle: they sign up first, then you add them")
        }
        return found
    }

    /// Makes the account `name` stands for a co-host of `record` and mails them; the record as it is now.
    package func add(_ name: String, to record: StreamRecord, by caller: String, address: String) async throws -> StreamRecord {
        let account = try await account(named: name)
        guard account.role != .viewer else {
            throw AccountProblem(.conflict, "\(account.displayName) has a viewer account, which cannot broadcast: an administrator can make them a broadcaster")
        }
        let changed: StreamRecord
        do {
            guard let r = try await catalog.addCohost(id: record.id, account: account.id) else {
                throw AccountProblem(.notFound, "you have no stream \(record.id)")
            }
            changed = r
        } catch let e as StreamError {
            throw AccountProblem(.conflict, "\(account.displayName): \(e.description)")
        }
        await service.audit.record("co-host added", account: caller, address: address, detail: "\(account.id) to \(record.id)")
        let host = try await service.account(id: caller)
        do {
            try await service.sendMail(account.email, "\(host?.displayName ?? "A broadcaster") made you a co-host of \(record.title)", """
                Hello \(account.displayName),

                \(host?.displayName ?? "A broadcaster") made you a co-host of "\(record.title)" on StreamTube: you can broadcast into it with a stream key of your own.

                Your studio shows the server and your key:

                \(service.settings.publicURL)/studio#cohosting

                One person is on the air at a time: the host hands the stream to you in their studio, and from then on your broadcast goes out to the viewers.
                """)
        } catch {
            service.logger.warning("co-host mail not sent", metadata: ["stream": "\(record.id)", "error": "\(error)"])
        }
        return changed
    }

    /// Removes co-host `account` from `record`: their key is refused from now on, on every node.
    package func remove(_ account: String, from record: StreamRecord, by caller: String, address: String) async throws -> StreamRecord {
        guard let changed = try await catalog.removeCohost(id: record.id, account: account) else {
            throw AccountProblem(.notFound, "no such co-host of this stream")
        }
        await service.audit.record("co-host removed", account: caller, address: address, detail: "\(account) from \(record.id)")
        return changed
    }

    /// Hands `record` to co-host `account`, or back to its host (nil).
    package func handOver(_ record: StreamRecord, to account: String?, by caller: String, address: String) async throws -> StreamRecord {
        do {
            guard let changed = try await catalog.handOver(id: record.id, to: account) else {
                throw AccountProblem(.notFound, "you have no stream \(record.id)")
            }
            await service.audit.record("stream handed over", account: caller, address: address,
                                       detail: "\(record.id) to \(account.map { "co-host \($0)" } ?? "its host")")
            service.logger.info("stream handed over in the studio", metadata: [
                "stream": "\(record.id)", "to": "\(account.map { "co-host \($0)" } ?? "host")", "by": "\(caller)",
            ])
            return changed
        } catch let e as StreamError {
            throw AccountProblem(.notFound, e.description)
        }
    }

    /// A new key for co-host `account` of `stream`: the old one is refused from now on.
    package func rotateKey(stream: String, account: String, address: String) async throws -> StreamRecord {
        guard StreamIdentifiers.isWellFormed(Substring(stream)),
              let changed = try await catalog.rotateCohostKey(id: stream, account: account) else {
            throw AccountProblem(.notFound, "you co-host no stream \(stream.prefix(20))")
        }
        await service.audit.record("co-host key replaced", account: account, address: address, detail: stream)
        return changed
    }

    /// `record`'s co-hosts, named.
    package func entries(_ record: StreamRecord) async throws -> [CoHostEntry] {
        var out: [CoHostEntry] = []
        for c in record.cohosts {
            let a = try await service.account(id: c.account)
            out.append(CoHostEntry(account: c.account, displayName: a?.displayName ?? "(account gone)",
                                   handle: try await service.channels.handle(of: c.account), addedAt: c.addedAt,
                                   onAir: record.onAirPublisher == .cohost(account: c.account)))
        }
        return out
    }

    /// The streams `account` co-hosts, oldest first.
    package func streams(cohostedBy account: String) -> [StreamRecord] {
        catalog.all.filter { $0.cohost(account: account) != nil }
    }
}
