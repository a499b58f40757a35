// Migrations: the schema's history, one numbered list for both engines. A migration is written
// once with SQLKit; where SQLite and PostgreSQL differ (a type, how to list a table's columns)
// it asks `isPostgres`. Never change a migration that has shipped: add the next one.
import Foundation
import SQLKit

package enum Migrations {
    /// Every migration, in order; `sealer` seals what is kept secret at rest.
    package static func all(sealer: any SecretSealer) -> [Migration] { [
        Migration(version: 1, name: "streams") { db in
            // Files made before numbered migrations already have the table.
            try await db.create(table: "streams").ifNotExists()
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("stream_key", type: .text, .notNull, .unique)
                .column("title", type: .text, .notNull)
                .column("created_at", type: timeType(db), .notNull)
                .run()
        },
        Migration(version: 2, name: "per-stream ladder and preset") { db in
            let columns = try await columnNames(of: "streams", in: db)
            for column in ["ladder", "x264_preset"] where !columns.contains(column) {
                try await db.alter(table: "streams").column(column, type: .text).run()
            }
        },
        Migration(version: 3, name: "stream keys kept as a digest and sealed") { db in
            try await db.create(table: "streams_v3")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("key_digest", type: .text, .notNull, .unique)
                .column("key_sealed", type: .text)
                .column("title", type: .text, .notNull)
                .column("created_at", type: timeType(db), .notNull)
                .column("ladder", type: .text)
                .column("x264_preset", type: .text)
                .run()
            let rows = try await db.select().columns("id", "stream_key", "title", "created_at", "ladder", "x264_preset")
                .from("streams").all()
            for row in rows {
                guard let id = try? row.decode(column: "id", as: String.self),
                      let key = try? row.decode(column: "stream_key", as: String.self) else { continue }
                try await db.insert(into: "streams_v3")
                    .columns("id", "key_digest", "key_sealed", "title", "created_at", "ladder", "x264_preset")
                    .values(SQLBind(id), SQLBind(StreamIdentifiers.digest(key)), SQLBind(try sealer.seal(key)),
                            SQLBind(try row.decode(column: "title", as: String.self)),
                            SQLBind(try row.decode(column: "created_at", as: Double.self)),
                            optional(try row.decode(column: "ladder", as: String?.self)),
                            optional(try row.decode(column: "x264_preset", as: String?.self)))
                    .run()
            }
            try await db.drop(table: "streams").run()
            try await db.alter(table: "streams_v3").rename(to: "streams").run()
        },
        Migration(version: 4, name: "keep the source rendition whatever its keyframes") { db in
            try await db.alter(table: "streams").column("keep_source", type: .int, .notNull, .default(0)).run()
        },
        Migration(version: 5, name: "accounts, and the account that owns a stream") { db in
            // Passwords and sessions come in a later migration: columns added to this table
            // (nullable, or with a default) and tables of their own.
            try await db.create(table: "accounts")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("email", type: .text, .notNull, .unique)
                .column("display_name", type: .text, .notNull)
                .column("role", type: .text, .notNull,
                        .check(SQLRaw("role IN (" + Account.Role.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ") + ")")))
                .column("created_at", type: timeType(db), .notNull)
                .run()
            // Streams made with the operator token have no owner.
            try await db.alter(table: "streams")
                .column("owner_account", type: .text, .references("accounts", "id", onDelete: .setNull))
                .run()
            try await db.create(index: "streams_owner_account").on("streams").column("owner_account").run()
        },
        Migration(version: 6, name: "sign-in: passwords, sessions, API tokens, mail links, providers, audit, throttling") { db in
            let time = timeType(db)
            try await db.alter(table: "accounts").column("password_hash", type: .text).run()
            try await db.alter(table: "accounts").column("email_verified_at", type: time).run()
            // A session: a cookie's token, kept as its SHA-256 digest; deleting the row signs it out everywhere.
            try await db.create(table: "sessions")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("token_digest", type: .text, .notNull, .unique)
                .column("account_id", type: .text, .notNull, .references("accounts", "id", onDelete: .cascade))
                .column("created_at", type: time, .notNull)
                .column("last_seen_at", type: time, .notNull)
                .column("expires_at", type: time, .notNull)
                .column("user_agent", type: .text, .notNull)
                .column("address", type: .text, .notNull)
                .column("method", type: .text, .notNull)
                .run()
            try await db.create(index: "sessions_account").on("sessions").column("account_id").run()
            try await db.create(table: "api_tokens")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("token_digest", type: .text, .notNull, .unique)
                .column("account_id", type: .text, .notNull, .references("accounts", "id", onDelete: .cascade))
                .column("name", type: .text, .notNull)
                .column("scopes", type: .text, .notNull)
                .column("created_at", type: time, .notNull)
                .column("expires_at", type: time)
                .column("last_used_at", type: time)
                .run()
            try await db.create(index: "api_tokens_account").on("api_tokens").column("account_id").run()
            // Single-use links sent by mail (verify an address, reset a password), kept as digests.
            try await db.create(table: "email_links")
                .column("digest", type: .text, .primaryKey(autoIncrement: false))
                .column("account_id", type: .text, .notNull, .references("accounts", "id", onDelete: .cascade))
                .column("purpose", type: .text, .notNull)
                .column("email", type: .text, .notNull)
                .column("created_at", type: time, .notNull)
                .column("expires_at", type: time, .notNull)
                .column("used_at", type: time)
                .run()
            // Accounts at sign-in providers (Google, an OpenID Connect issuer...) linked to ours.
            try await db.create(table: "identities")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("provider", type: .text, .notNull)
                .column("subject", type: .text, .notNull)
                .column("account_id", type: .text, .notNull, .references("accounts", "id", onDelete: .cascade))
                .column("email", type: .text)
                .column("created_at", type: time, .notNull)
                .run()
            try await db.create(index: "identities_provider_subject").unique().on("identities").column("provider").column("subject").run()
            try await db.create(index: "identities_account").on("identities").column("account_id").run()
            // A provider sign-in under way: its state (digest), what the callback must check, single use.
            try await db.create(table: "signin_flows")
                .column("state_digest", type: .text, .primaryKey(autoIncrement: false))
                .column("provider", type: .text, .notNull)
                .column("pending", type: .text, .notNull)
                .column("expires_at", type: time, .notNull)
                .run()
            try await db.create(table: "audit_log")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("account_id", type: .text, .references("accounts", "id", onDelete: .cascade))
                .column("at", type: time, .notNull)
                .column("event", type: .text, .notNull)
                .column("address", type: .text, .notNull)
                .column("detail", type: .text, .notNull)
                .run()
            try await db.create(index: "audit_log_account_at").on("audit_log").column("account_id").column("at").run()
            // Failed sign-ins per account and per address, shared by every node on the database.
            try await db.create(table: "signin_failures")
                .column("key", type: .text, .primaryKey(autoIncrement: false))
                .column("failures", type: .int, .notNull)
                .column("last_at", type: time, .notNull)
                .column("locked_until", type: time)
                .run()
        },
        Migration(version: 7, name: "streams: description, tags, visibility, schedule") { db in
            try await db.alter(table: "streams").column("description", type: .text, .notNull, .default("")).run()
            try await db.alter(table: "streams").column("tags", type: .text, .notNull, .default("")).run()
            try await db.alter(table: "streams").column("visibility", type: .text, .notNull, .default("public")).run()
            try await db.alter(table: "streams").column("starts_at", type: timeType(db)).run()
            try await db.alter(table: "streams").column("time_zone", type: .text).run()
            try await db.create(index: "streams_starts_at").on("streams").column("starts_at").run()
        },
        Migration(version: 8, name: "channels: handles and followers") { db in
            try await db.alter(table: "accounts").column("handle", type: .text).run()
            try await db.create(index: "accounts_handle").unique().on("accounts").column("handle").run()
            try await db.create(table: "follows")
                .column("follower_id", type: .text, .notNull, .references("accounts", "id", onDelete: .cascade))
                .column("channel_id", type: .text, .notNull, .references("accounts", "id", onDelete: .cascade))
                .column("created_at", type: timeType(db), .notNull)
                .run()
            try await db.create(index: "follows_pair").unique().on("follows").column("follower_id").column("channel_id").run()
            try await db.create(index: "follows_channel").on("follows").column("channel_id").run()
        },
        Migration(version: 9, name: "notices sent about scheduled streams") { db in
            // One row per notice (a reminder, a "live now", a "missed"): whoever inserts it sends it,
            // so a notice goes out once however many nodes try.
            try await db.create(table: "stream_notices")
                .column("stream_id", type: .text, .notNull)
                .column("kind", type: .text, .notNull)
                .column("occasion", type: .text, .notNull)
                .column("sent_at", type: timeType(db), .notNull)
                .column("node", type: .text, .notNull)
                .run()
            try await db.create(index: "stream_notices_once").unique().on("stream_notices").column("stream_id").column("kind")
                .column("occasion").run()
        },
        Migration(version: 10, name: "invitations to private streams") { db in
            let time = timeType(db)
            // By mail (one person; the link in the mail) or by link (expiring, limited uses); a
            // link token is kept as its digest. Revoking one ends the access of everyone who came by it.
            try await db.create(table: "invitations")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("stream_id", type: .text, .notNull, .references("streams", "id", onDelete: .cascade))
                .column("token_digest", type: .text, .notNull, .unique)
                .column("email", type: .text)
                .column("max_uses", type: .int)
                .column("uses", type: .int, .notNull, .default(0))
                .column("expires_at", type: time, .notNull)
                .column("revoked_at", type: time)
                .column("created_at", type: time, .notNull)
                .run()
            try await db.create(index: "invitations_stream").on("invitations").column("stream_id").run()
            // Who came in by an invitation: an account, or a named guest (a guest id in a cookie).
            try await db.create(table: "invitees")
                .column("stream_id", type: .text, .notNull, .references("streams", "id", onDelete: .cascade))
                .column("viewer", type: .text, .notNull)
                .column("invitation_id", type: .text, .notNull, .references("invitations", "id", onDelete: .cascade))
                .column("name", type: .text, .notNull)
                .column("joined_at", type: time, .notNull)
                .run()
            try await db.create(index: "invitees_once").unique().on("invitees").column("stream_id").column("viewer").run()
            try await db.alter(table: "streams").column("allow_guests", type: .int, .notNull, .default(0)).run()
        },
        Migration(version: 11, name: "deleted streams remembered") { db in
            // Nodes that each keep their own database hear of a deletion from the node it was made
            // on; a tombstone keeps a node that was away from bringing the stream back.
            try await db.create(table: "deleted_streams")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("deleted_at", type: timeType(db), .notNull)
                .run()
        },
        Migration(version: 12, name: "uploaded thumbnails: their version in the stream's record, the picture beside it") { db in
            // The version rides in the record (every node that has the record knows which picture
            // to show); the re-encoded JPEG is kept apart, so reading records never reads pictures.
            try await db.alter(table: "streams").column("thumbnail_version", type: .text).run()
            try await db.alter(table: "streams").column("thumbnail_changed_at", type: timeType(db)).run()
            try await db.create(table: "stream_thumbnails")
                .column("stream_id", type: .text, .primaryKey(autoIncrement: false), .references("streams", "id", onDelete: .cascade))
                .column("version", type: .text, .notNull)
                .column("jpeg", type: .blob, .notNull)
                .run()
        },
        Migration(version: 13, name: "recordings") { db in
            let time = timeType(db)
            // One row per copy: the recording `id` as a node holds it (origin and standby each keep
            // one). Each node writes its own row only, so nodes never race on a row.
            try await db.create(table: "recordings")
                .column("id", type: .text, .notNull)
                .column("node_id", type: .text, .notNull)
                .column("stream_id", type: .text, .notNull)
                .column("state", type: .text, .notNull)
                .column("reason", type: .text)
                .column("started_at", type: time, .notNull)
                .column("ended_at", type: time)
                .column("duration_seconds", type: time, .notNull)
                .column("bytes", type: .bigint, .notNull)
                .column("renditions", type: .text, .notNull)
                .column("updated_at", type: time, .notNull)
                .run()
            try await db.create(index: "recordings_copy").unique().on("recordings").column("id").column("node_id").run()
            try await db.create(index: "recordings_stream").on("recordings").column("stream_id").run()
        },
        Migration(version: 14, name: "co-hosts, each with a key of their own; who is on the air") { db in
            // A co-host's key is kept as a stream's is: its digest (unique, with the streams' own
            // digests checked in memory) and sealed.
            try await db.create(table: "cohosts")
                .column("stream_id", type: .text, .notNull, .references("streams", "id", onDelete: .cascade))
                .column("account_id", type: .text, .notNull, .references("accounts", "id", onDelete: .cascade))
                .column("key_digest", type: .text, .notNull, .unique)
                .column("key_sealed", type: .text)
                .column("created_at", type: timeType(db), .notNull)
                .run()
            try await db.create(index: "cohosts_once").unique().on("cohosts").column("stream_id").column("account_id").run()
            try await db.create(index: "cohosts_account").on("cohosts").column("account_id").run()
            // The co-host a stream is handed to; NULL: its host.
            try await db.alter(table: "streams").column("on_air", type: .text).run()
        },
        Migration(version: 15, name: "what people set on a recording, and deleted recordings' tombstones") { db in
            let time = timeType(db)
            // One row per recording (not per copy): its title, description, visibility (NULL:
            // its stream's), the effective trim (seconds, and the first and last segments kept), an
            // uploaded picture, and `deleted_at` once it was deleted: the tombstone every holder
            // of a copy acts on, one that was away too.
            try await db.create(table: "recording_details")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("stream_id", type: .text, .notNull)
                .column("title", type: .text)
                .column("description", type: .text, .notNull, .default(""))
                .column("visibility", type: .text)
                .column("trim_start", type: time)
                .column("trim_end", type: time)
                .column("trim_first", type: .bigint)
                .column("trim_last", type: .bigint)
                .column("thumbnail", type: .text)
                .column("thumbnail_jpeg", type: .blob)
                .column("deleted_at", type: time)
                .column("updated_at", type: time, .notNull)
                .run()
            try await db.create(index: "recording_details_stream").on("recording_details").column("stream_id").run()
        },
        Migration(version: 16, name: "recording off per stream and per channel; a channel's retention") { db in
            // The stream's own setting (null: its channel's), and its channel's settings as copied
            // onto it (JSON; null: recorded, everything kept), so every node holding it knows them.
            try await db.alter(table: "streams").column("record", type: .int).run()
            try await db.alter(table: "streams").column("channel_recording", type: .text).run()
            try await db.alter(table: "accounts").column("recording", type: .text).run()
        },
        Migration(version: 17, name: "payments: prices, orders, gateway events, entitlements, the ledger, the outbox, subscriptions") { db in
            // Money is an integer of minor units (cents) with its ISO 4217 currency, never a float.
            // What is sold: a ticket for a stream or a recording, a channel's subscription.
            try await db.create(table: "prices")
                .column("item_kind", type: .text, .notNull)
                .column("item_id", type: .text, .notNull)
                .column("plan", type: .text, .notNull)
                .column("seller_id", type: .text, .notNull)
                .column("amount", type: .bigint, .notNull)
                .column("currency", type: .text, .notNull)
                .column("trial_days", type: .int, .notNull, .default(0))
                .column("updated_at", type: timeType(db), .notNull)
                .primaryKey("item_kind", "item_id", "plan")
                .run()
            // An order is a state machine (`OrderState`); its price and the platform's fee are
            // fixed when it is made. `gateway_ref`: the provider's id of its checkout; `gateway_payment`:
            // of the payment (refunds and disputes name that).
            try await db.create(table: "orders")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("buyer_id", type: .text, .notNull)
                .column("seller_id", type: .text, .notNull)
                .column("item_kind", type: .text, .notNull)
                .column("item_id", type: .text, .notNull)
                .column("plan", type: .text, .notNull)
                .column("amount", type: .bigint, .notNull)
                .column("currency", type: .text, .notNull)
                .column("fee", type: .bigint, .notNull)
                .column("gateway", type: .text, .notNull)
                .column("gateway_ref", type: .text)
                .column("gateway_payment", type: .text)
                .column("state", type: .text, .notNull)
                .column("reason", type: .text)
                .column("refunded_early", type: .int, .notNull, .default(0))
                .column("subscription_id", type: .text)
                .column("created_at", type: timeType(db), .notNull)
                .column("updated_at", type: timeType(db), .notNull)
                .run()
            try await db.create(index: "orders_gateway_ref").unique().on("orders").column("gateway").column("gateway_ref").run()
            try await db.create(index: "orders_gateway_payment").on("orders").column("gateway").column("gateway_payment").run()
            try await db.create(index: "orders_buyer").on("orders").column("buyer_id").run()
            try await db.create(index: "orders_seller").on("orders").column("seller_id").run()
            // Every event a gateway sent, once: applying one is inserting its row first.
            try await db.create(table: "gateway_events")
                .column("gateway", type: .text, .notNull)
                .column("event_id", type: .text, .notNull)
                .column("order_id", type: .text)
                .column("outcome", type: .text, .notNull)
                .column("received_at", type: timeType(db), .notNull)
                .primaryKey("gateway", "event_id")
                .run()
            // What a paid order opens: one per order, revoked by a refund or a chargeback.
            try await db.create(table: "entitlements")
                .column("order_id", type: .text, .primaryKey(autoIncrement: false))
                .column("account_id", type: .text, .notNull)
                .column("item_kind", type: .text, .notNull)
                .column("item_id", type: .text, .notNull)
                .column("starts_at", type: timeType(db), .notNull)
                .column("ends_at", type: timeType(db))
                .column("revoked_at", type: timeType(db))
                .run()
            // One standing entitlement per account and item: a second payment for what the buyer
            // holds already cannot open it twice (the order is flagged for a refund instead).
            try await db.raw("""
                CREATE UNIQUE INDEX entitlements_once ON entitlements (account_id, item_kind, item_id) WHERE revoked_at IS NULL
                """).run()
            // The ledger: double entry, append only. A transaction's entries sum to zero in each
            // currency (debits positive, credits negative); `reference` makes posting idempotent.
            try await db.create(table: "ledger_transactions")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("kind", type: .text, .notNull)
                .column("reference", type: .text, .notNull, .unique)
                .column("order_id", type: .text)
                .column("created_at", type: timeType(db), .notNull)
                .run()
            try await db.create(table: "ledger_entries")
                .column("transaction_id", type: .text, .notNull, .references("ledger_transactions", "id"))
                .column("line", type: .int, .notNull)
                .column("account", type: .text, .notNull)
                .column("currency", type: .text, .notNull)
                .column("amount", type: .bigint, .notNull)
                .primaryKey("transaction_id", "line")
                .run()
            try await db.create(index: "ledger_entries_account").on("ledger_entries").column("account").run()
            for table in ["ledger_transactions", "ledger_entries"] {
                if isPostgres(db) {
                    try await db.raw("""
                        CREATE FUNCTION \(unsafeRaw: table)_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
                        BEGIN RAISE EXCEPTION 'the ledger is append-only: \(unsafeRaw: table) rows are never changed'; END $$
                        """).run()
                    try await db.raw("""
                        CREATE TRIGGER \(unsafeRaw: table)_append_only BEFORE UPDATE OR DELETE ON \(unsafeRaw: table)
                        FOR EACH ROW EXECUTE FUNCTION \(unsafeRaw: table)_append_only()
                        """).run()
                } else {
                    for op in ["UPDATE", "DELETE"] {
                        try await db.raw("""
                            CREATE TRIGGER \(unsafeRaw: table)_no_\(unsafeRaw: op.lowercased()) BEFORE \(unsafeRaw: op) ON \(unsafeRaw: table)
                            BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: \(unsafeRaw: table) rows are never changed'); END
                            """).run()
                    }
                }
            }
            // Side effects of an applied event (a receipt to mail), written in its transaction and
            // carried out after, at least once.
            try await db.create(table: "payment_outbox")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("kind", type: .text, .notNull)
                .column("payload", type: .text, .notNull)
                .column("created_at", type: timeType(db), .notNull)
                .column("done_at", type: timeType(db))
                .column("attempts", type: .int, .notNull, .default(0))
                .column("claimed_by", type: .text)
                .column("claimed_until", type: timeType(db))
                .column("last_error", type: .text)
                .run()
            try await db.create(index: "payment_outbox_due").on("payment_outbox").column("done_at").column("claimed_until").run()
            // A channel's subscription over time: its period, renewals and cancellation
            // (`SubscriptionState`); its entitlement (`entitlements.order_id` = the subscription's
            // id) ends with the period it has paid for, plus the grace while a renewal is retried.
            try await db.create(table: "subscriptions")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("account_id", type: .text, .notNull)
                .column("channel_id", type: .text, .notNull)
                .column("plan", type: .text, .notNull)
                .column("amount", type: .bigint, .notNull)
                .column("currency", type: .text, .notNull)
                .column("fee", type: .bigint, .notNull)
                .column("gateway", type: .text, .notNull)
                .column("state", type: .text, .notNull)
                .column("period", type: .int, .notNull)
                .column("period_end", type: timeType(db), .notNull)
                .column("cancel_at_period_end", type: .int, .notNull, .default(0))
                .column("attempts", type: .int, .notNull, .default(0))
                .column("next_attempt_at", type: timeType(db))
                .column("created_at", type: timeType(db), .notNull)
                .column("updated_at", type: timeType(db), .notNull)
                .run()
            try await db.create(index: "subscriptions_due").on("subscriptions").column("state").column("period_end").run()
            try await db.create(index: "subscriptions_account").on("subscriptions").column("account_id").run()
        },
        Migration(version: 18, name: "payments: subscriptions kept by a provider (Stripe, PayPal); providers' plans") { db in
            // A subscription the provider renews itself: its id there (`sub_...`, `I-...`), which
            // its renewal webhooks name, and the provider's customer (Stripe's portal needs it).
            // Null for ours (the test gateway, BTCPay): the renewal job charges those.
            try await db.alter(table: "subscriptions").column("provider_ref", type: .text).run()
            try await db.alter(table: "subscriptions").column("provider_customer", type: .text).run()
            try await db.create(index: "subscriptions_provider_ref").unique().on("subscriptions").column("gateway").column("provider_ref").run()
            // What a provider must have before it can sell a subscription (PayPal's billing plan for a
            // channel's price), made once and remembered by what it sells.
            try await db.create(table: "gateway_plans")
                .column("gateway", type: .text, .notNull)
                .column("plan_key", type: .text, .notNull)
                .column("plan_id", type: .text, .notNull)
                .column("created_at", type: timeType(db), .notNull)
                .primaryKey("gateway", "plan_key")
                .run()
        },
        Migration(version: 19, name: "viewer figures: sessions per node, concurrent samples, players' beacons") { db in
            // One row per session per node that served it: each node adds what it served, so a
            // session seen on two nodes is one session with the sum of both.
            try await db.create(table: "viewer_sessions")
                .column("stream_id", type: .text, .notNull)
                .column("session_id", type: .text, .notNull)
                .column("node_id", type: .text, .notNull)
                .column("region", type: .text, .notNull)
                .column("rendition", type: .text)
                .column("device", type: .text, .notNull)
                .column("referrer", type: .text)
                .column("first_seen", type: timeType(db), .notNull)
                .column("last_seen", type: timeType(db), .notNull)
                .column("watch_ms", type: .bigint, .notNull, .default(0))
                .column("bytes", type: .bigint, .notNull, .default(0))
                .primaryKey("stream_id", "session_id", "node_id")
                .run()
            try await db.create(index: "viewer_sessions_seen").on("viewer_sessions").column("stream_id").column("last_seen").run()
            try await db.create(index: "viewer_sessions_recent").on("viewer_sessions").column("last_seen").run()
            // The concurrent viewers of a stream, sampled by its owner (whoever it is at the time).
            try await db.create(table: "viewer_samples")
                .column("stream_id", type: .text, .notNull)
                .column("at", type: timeType(db), .notNull)
                .column("concurrent", type: .int, .notNull)
                .primaryKey("stream_id", "at")
                .run()
            // What the page's player says of a session (startup time, time stalled and played).
            try await db.create(table: "viewer_beacons")
                .column("stream_id", type: .text, .notNull)
                .column("session_id", type: .text, .notNull)
                .column("startup_ms", type: .bigint)
                .column("stalled_ms", type: .bigint, .notNull, .default(0))
                .column("played_ms", type: .bigint, .notNull, .default(0))
                .column("stalls", type: .int, .notNull, .default(0))
                .column("updated_at", type: timeType(db), .notNull)
                .primaryKey("stream_id", "session_id")
                .run()
        },
        Migration(version: 20, name: "live chat: messages kept with their stream, rooms' slow mode, bans and timeouts") { db in
            // Written by the room's node (the stream's owner); read by a recording's page to
            // replay them at their time. A deleted message keeps its row (deleted_at) so that a
            // replay in progress learns it is gone; its text is blanked.
            try await db.create(table: "chat_messages")
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("stream_id", type: .text, .notNull)
                .column("account_id", type: .text, .notNull)
                .column("display_name", type: .text, .notNull)
                .column("body", type: .text, .notNull)
                .column("posted_at", type: timeType(db), .notNull)
                .column("offset_seconds", type: timeType(db))
                .column("deleted_at", type: timeType(db))
                .run()
            try await db.create(index: "chat_messages_stream_time").on("chat_messages").column("stream_id").column("posted_at").run()
            // A room's rules outlive its node: the next owner loads them.
            try await db.create(table: "chat_rooms")
                .column("stream_id", type: .text, .primaryKey(autoIncrement: false))
                .column("slow_seconds", type: .int, .notNull, .default(0))
                .run()
            try await db.create(table: "chat_sanctions")
                .column("stream_id", type: .text, .notNull)
                .column("account_id", type: .text, .notNull)
                .column("banned", type: .int, .notNull, .default(0))
                .column("timed_out_until", type: timeType(db))
                .primaryKey("stream_id", "account_id")
                .run()
        },
        Migration(version: 21, name: "live chat: a room's followers-only mode") { db in
            try await db.alter(table: "chat_rooms").column("followers_only", type: .int, .notNull, .default(0)).run()
        },
    ] }

    /// Seconds since 1970 as a float: SQLite's REAL is 8 bytes, PostgreSQL's only 4.
    static func timeType(_ db: any SQLDatabase) -> SQLDataType {
        isPostgres(db) ? .custom(SQLRaw("DOUBLE PRECISION")) : .real
    }

    package static func isPostgres(_ db: any SQLDatabase) -> Bool { db.dialect.name == "postgresql" }

    /// The columns `table` has now.
    static func columnNames(of table: String, in db: any SQLDatabase) async throws -> Set<String> {
        let rows: [any SQLRow]
        if isPostgres(db) {
            rows = try await db.raw("""
                SELECT column_name AS name FROM information_schema.columns
                WHERE table_schema = current_schema() AND table_name = \(bind: table)
                """).all()
        } else {
            rows = try await db.raw("SELECT name FROM pragma_table_info(\(bind: table))").all()
        }
        return Set(rows.compactMap { try? $0.decode(column: "name", as: String.self) })
    }

    /// A bound value, or NULL.
    package static func optional(_ value: (some Encodable & Sendable)?) -> any SQLExpression {
        value.map { SQLBind($0) } ?? SQLLiteral.null
    }
}
