// ChatRoutes: the chat's plain HTTP side: a stream's kept messages by time (what a recording's
// page replays as it plays) and the panel's script.
import Catalog
import Crypto
import Foundation
import HTTPSupport
import Hummingbird

package struct ChatRoutes: Sendable {
    let store: ChatStore
    let catalog: StreamCatalog
    let mayRead: @Sendable (StreamRecord, Substring?) -> Bool

    package init(store: ChatStore, catalog: StreamCatalog, mayRead: @escaping @Sendable (StreamRecord, Substring?) -> Bool) {
        self.store = store
        self.catalog = catalog
        self.mayRead = mayRead
    }

    /// A replay asks a range at most this long (seconds).
    package static let maxRange = 3600.0

    package struct Page: Codable, Sendable {
        package var messages: [ChatMessage]
        /// The range answered, [from, until): a full page ends before `to` (ask again from here).
        package var until: Double
    }

    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        // `GET /chat/{stream}/messages?from=&to=` (seconds since 1970; `token=` for a private stream).
        routes.get("/chat/:id/messages") { request, context -> Response in
            let id = try context.parameters.require("id")
            guard StreamIdentifiers.isWellFormed(Substring(id)), let record = await catalog.find(id: id) else {
                throw Problem.notFound("no stream \(id)")
            }
            guard mayRead(record, request.uri.queryParameters.get("token").map { Substring($0) }) else {
                throw Problem(.forbidden, "this stream is private: its chat is for those who may watch it")
            }
            guard let from = request.uri.queryParameters.get("from").flatMap(Double.init),
                  let to = request.uri.queryParameters.get("to").flatMap(Double.init),
                  from.isFinite, to.isFinite, from <= to else {
                throw Problem.badRequest("give from and to, seconds since 1970, from <= to")
            }
            guard to - from <= Self.maxRange else { throw Problem.badRequest("ask at most \(Int(Self.maxRange)) s at a time") }
            let messages = try await store.messages(stream: id, from: from, to: to)
            let until = messages.count >= ChatStore.pageLimit ? (messages.last?.at ?? to) : to
            return try Responses.json(Page(messages: messages, until: until), cache: "no-store")
        }
        routes.get("/assets/chat.js") { request, _ -> Response in
            var response = Response(status: .ok, headers: [.contentType: "text/javascript; charset=utf-8"],
                                    body: .init(byteBuffer: ByteBuffer(bytes: ChatPanel.script)))
            response.headers[.cacheControl] = request.uri.queryParameters.get("v") == ChatPanel.scriptVersion
                ? "public, max-age=31536000, immutable" : "no-cache"
            return response
        }
        return routes
    }
}

/// The chat panel of a stream's page and the replay panel of a recording's page: markup the
/// page puts beside its player, and `Assets/chat.js`, which fills them (text as text only).
package enum ChatPanel {
    package static let script: [UInt8] = PackageResources.chat_js
    package static let scriptVersion: String = SHA256.hash(data: script).prefix(6).map { String(format: "%02x", $0) }.joined()
    package static var scriptPath: String { "/assets/chat.js?v=\(scriptVersion)" }

    static let style = """
    <style>
    .chat { margin-top: 1.2em; max-width: 40em; }
    .chat h2 { font-size: 1.1em; margin: 0 0 .4em; }
    .chat .chat-box { height: 16em; overflow-y: auto; background: #1a1a1a; border: 1px solid #444; border-radius: .3em; }
    .chat .chat-box:focus-visible { outline: 3px solid #6af; outline-offset: 2px; }
    .chat ol { list-style: none; margin: 0; padding: .4em; }
    .chat li { padding: .15em 0; overflow-wrap: anywhere; }
    .chat .who { font-weight: bold; color: #9cf; margin-right: .4em; }
    .chat li button { font-size: .8em; padding: .1em .4em; margin-left: .3em; }
    .chat form { display: flex; gap: .5em; margin-top: .5em; flex-wrap: wrap; }
    .chat input[type=text] { flex: 1 1 12em; min-width: 0; font: inherit; padding: .35em; background: #222; color: #eee;
                             border: 1px solid #888; border-radius: .3em; }
    .chat input:focus-visible { outline: 3px solid #6af; outline-offset: 2px; }
    .chat a { color: #9cf; }
    .chat .chat-tools { margin-top: .5em; }
    .chat .chat-tools[hidden] { display: none; }
    .chat p { margin: .4em 0; }
    .chat .chat-reactions { display: flex; flex-wrap: wrap; gap: .4em; margin-top: .5em; }
    .chat .chat-reactions button { font: inherit; padding: .25em .6em; min-height: 2.2em; }
    .chat .chat-reactions button:focus-visible { outline: 3px solid #6af; outline-offset: 2px; }
    </style>
    """

    static let reactionSymbols = ["like": "👍", "love": "❤️", "laugh": "😂", "wow": "😮", "clap": "👏"]

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "'", with: "&#39;")
    }

    /// The live chat of `stream`. `csrf`: the page's anti-forgery token (the socket carries it);
    /// `token`: a private stream's playback token; `signedIn`: whether the viewer may post.
    package static func live(stream: String, csrf: String?, token: String?, signedIn: Bool, limits: ChatLimits = ChatLimits()) -> String {
        let attributes = "data-stream=\"\(escape(stream))\" data-csrf=\"\(escape(csrf ?? ""))\" data-token=\"\(escape(token ?? ""))\""
            + " data-mode=\"live\" data-max=\"\(limits.maxCharacters)\""
        let form = signedIn
            ? """
              <form id="chat-form" hidden><label for="chat-input">Message</label>
              <input id="chat-input" type="text" maxlength="\(limits.maxCharacters)" autocomplete="off" required>
              <button type="submit">Send</button></form>
              <div id="chat-tools" class="chat-tools" hidden><label>Slow mode <select id="chat-slow">
              <option value="0">Off</option><option value="5">5 s</option><option value="30">30 s</option><option value="120">2 min</option>
              </select></label>
              <label><input id="chat-followers" type="checkbox"> Followers only</label></div>
              """
            : "<p><a href=\"/signin\">Sign in</a> to chat.</p>"
        // The reactions: buttons with their counts (a signed-out viewer sees the counts only).
        let reactions = ChatReactions.all.map { kind in
            "<button type=\"button\" data-reaction=\"\(kind)\"\(signedIn ? "" : " disabled")><span aria-hidden=\"true\">"
                + (reactionSymbols[kind] ?? "") + "</span> \(kind.prefix(1).uppercased() + kind.dropFirst()) <span class=\"count\">0</span></button>"
        }.joined()
        return """
        \(style)
        <section id="chat" class="chat" aria-labelledby="chat-title" \(attributes)>
          <h2 id="chat-title">Chat</h2>
          <div class="chat-box" role="log" aria-live="polite" aria-label="Chat messages" tabindex="0"><ol id="chat-log"></ol></div>
          <p id="chat-status" role="status">Connecting to the chat…</p>
          <div id="chat-reactions" class="chat-reactions" role="group" aria-label="Reactions">\(reactions)</div>
          \(form)
        </section>
        <script src="\(scriptPath)" defer></script>
        """
    }

    /// The chat of a recording, replayed as its video plays: the recording began at `startedAt`.
    package static func replay(stream: String, startedAt: Date, token: String?) -> String {
        let attributes = "data-stream=\"\(escape(stream))\" data-token=\"\(escape(token ?? ""))\" data-mode=\"replay\""
            + " data-start=\"\(startedAt.timeIntervalSince1970)\""
        return """
        \(style)
        <section id="chat" class="chat" aria-labelledby="chat-title" \(attributes)>
          <h2 id="chat-title">Chat replay</h2>
          <div class="chat-box" role="log" aria-label="Chat messages at this point of the recording" tabindex="0"><ol id="chat-log"></ol></div>
          <p id="chat-status" role="status"></p>
        </section>
        <script src="\(scriptPath)" defer></script>
        """
    }
}
