// Tasks an operator runs on a node's database without a running node: making the first
// admin (`streamtube admin create-user --admin`), checking the ledger (`streamtube ledger verify`).
import Accounts
import Catalog
import Cluster
import Foundation
import Gossip
import Logging
import Payments

package enum AdminTasks {
    /// Opens the database `config` names (migrating it as `serve` would), runs `body` with
    /// the accounts on it, and closes it.
    package static func withAccounts<T: Sendable>(_ config: NodeConfiguration, logger: Logger,
                                                  _ body: (AccountService) async throws -> T) async throws -> T {
        try await withDatabase(config, logger: logger) { database in
            let service = try await AccountService(database: database, settings: try config.accountsSettings(),
                                                   sendMail: try config.sendMail(logger: logger), logger: logger)
            return try await body(service)
        }
    }

    /// Checks that every transaction of the ledger balances (`streamtube ledger verify`).
    package static func verifyLedger(_ config: NodeConfiguration, logger: Logger) async throws -> LedgerReport {
        try await withDatabase(config, logger: logger) { try await Ledger(database: $0).verify() }
    }

    /// Opens the database `config` names (migrating it as `serve` would), runs `body` on it, and closes it.
    package static func withDatabase<T: Sendable>(_ config: NodeConfiguration, logger: Logger,
                                                  _ body: (Database) async throws -> T) async throws -> T {
        let state = try NodeState.prepare(dataDir: config.dataDir, nodeID: config.nodeID, adminToken: config.adminToken)
        let keyring: Keyring
        do { keyring = try NodeConfiguration.decodeKeys(config.clusterKey ?? state.clusterKey()) } catch {
            throw ConfigurationError("\(error)")
        }
        let location: DatabaseLocation
        do { location = try config.database.map(DatabaseLocation.init) ?? .sqlite(path: state.databasePath) } catch {
            throw ConfigurationError("\(error)")
        }
        let database = try await Database.open(location, logger: logger,
                                               migrations: Migrations.all(sealer: ClusterKeySealer(clusterKeys: keyring.keys)))
        do {
            let result = try await body(database)
            await database.close()
            return result
        } catch {
            await database.close()
            throw error
        }
    }

    /// Makes an account with a password; `role` admin for the first admin.
    package static func createUser(_ config: NodeConfiguration, email: String, name: String, password: String, role raw: String,
                                   logger: Logger) async throws -> Account {
        guard let role = Account.Role(rawValue: raw) else {
            throw ConfigurationError("the role must be one of \(Account.Role.allCases.map(\.rawValue).joined(separator: ", ")), got \(raw)")
        }
        return try await withAccounts(config, logger: logger) { service in
            do {
                let account = try await service.signUp(email: email, password: password, displayName: name, address: "local",
                                                       role: role, byAdmin: true)
                await service.audit.record("account made by the operator", account: account.id, address: "local",
                                           detail: "role \(role.rawValue)")
                return account
            } catch let p as AccountProblem {
                throw ConfigurationError(p.description)
            }
        }
    }
}
