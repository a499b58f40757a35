// ChatProtocol: the JSON a page and a node exchange over a chat WebSocket, and what nodes
// exchange over the link between a relaying node and the room's node.
//
// Viewer -> node:  {"type":"post","text":"…"} | {"type":"delete","id":"…"}
//                  {"type":"timeout","user":"…","minutes":5} | {"type":"ban","user":"…"} | {"type":"unban","user":"…"}
//                  {"type":"slow","seconds":10} | {"type":"followers","on":true} | {"type":"react","reaction":"clap"}
//                  {"type":"join"} (sent by the node itself when a viewer connects)
// Node -> viewer:  {"type":"hello","messages":[…],"slow":0,"followersOnly":false,"reactions":{"clap":3},
//                   "canPost":true,"moderator":false,"you":"…"}
//                  {"type":"message","message":{…}} | {"type":"deleted","id":"…"} | {"type":"slow","seconds":10}
//                  {"type":"followers","on":true} | {"type":"reactions","reactions":{"clap":4,"like":1}}
//                  {"type":"notice","text":"…"} (to one viewer: why something was refused)
// Relay -> room:   {"conn":"<the viewer's connection on the relay>","user":{author}|null,"command":{…}}
// Room -> relay:   {"event":{…}} to every viewer of the relay, {"to":"<conn>","event":{…}} to one.
import Foundation

package struct ChatCommand: Codable, Sendable, Equatable {
    package var type: String
    package var text: String?
    package var id: String?
    package var user: String?
    package var minutes: Int?
    package var seconds: Int?
    package var on: Bool?
    package var reaction: String?

    package init(type: String, text: String? = nil, id: String? = nil, user: String? = nil, minutes: Int? = nil, seconds: Int? = nil,
                 on: Bool? = nil, reaction: String? = nil) {
        self.type = type
        self.text = text
        self.id = id
        self.user = user
        self.minutes = minutes
        self.seconds = seconds
        self.on = on
        self.reaction = reaction
    }

    /// A viewer's frame, already bounded in size by the WebSocket layer; nil: not a command.
    package static func decode(_ text: String) -> ChatCommand? {
        try? JSONDecoder().decode(ChatCommand.self, from: Data(text.utf8))
    }

    package static let join = ChatCommand(type: "join")
}

package struct ChatEvent: Codable, Sendable, Equatable {
    package var type: String
    package var message: ChatMessage?
    package var messages: [ChatMessage]?
    package var id: String?
    package var text: String?
    package var seconds: Int?
    package var slow: Int?
    package var on: Bool?
    package var followersOnly: Bool?
    package var reactions: [String: Int]?
    package var canPost: Bool?
    package var moderator: Bool?
    package var you: String?

    package init(type: String) { self.type = type }

    package static func message(_ m: ChatMessage) -> ChatEvent {
        var e = ChatEvent(type: "message")
        e.message = m
        return e
    }

    package static func deleted(_ id: String) -> ChatEvent {
        var e = ChatEvent(type: "deleted")
        e.id = id
        return e
    }

    package static func slow(_ seconds: Int) -> ChatEvent {
        var e = ChatEvent(type: "slow")
        e.seconds = seconds
        return e
    }

    package static func followers(_ on: Bool) -> ChatEvent {
        var e = ChatEvent(type: "followers")
        e.on = on
        return e
    }

    package static func reactions(_ counts: [String: Int]) -> ChatEvent {
        var e = ChatEvent(type: "reactions")
        e.reactions = counts
        return e
    }

    package static func notice(_ text: String) -> ChatEvent {
        var e = ChatEvent(type: "notice")
        e.text = text
        return e
    }

    package static func hello(_ messages: [ChatMessage], slow: Int, followersOnly: Bool = false, reactions: [String: Int] = [:],
                              author: ChatAuthor?) -> ChatEvent {
        var e = ChatEvent(type: "hello")
        e.messages = messages
        e.slow = slow
        e.followersOnly = followersOnly
        e.reactions = reactions
        e.canPost = author != nil
        e.moderator = author?.moderator ?? false
        e.you = author?.id
        return e
    }

    /// The JSON text of the event, made once however many viewers get it.
    package var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? #"{"type":"notice","text":"internal error"}"#
    }
}

/// A frame on the link from a relaying node to the room's node.
package struct ChatRelayFrame: Codable, Sendable {
    package var conn: String
    package var user: ChatAuthor?
    package var command: ChatCommand
}

/// A frame on the link from the room's node to a relaying node; `event` is the event's JSON as
/// the room made it (passed on to the relay's viewers without decoding it again).
package enum ChatRelayEnvelope {
    package static func everyone(_ eventJSON: String) -> String { #"{"event":"# + eventJSON + "}" }
    package static func one(_ conn: String, _ eventJSON: String) -> String {
        #"{"to":""# + conn + #"","event":"# + eventJSON + "}"
    }

    /// Splits an envelope: who it is for (nil: every viewer) and the event's JSON.
    package static func open(_ text: String) -> (to: String?, event: String)? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let event = object["event"], JSONSerialization.isValidJSONObject(event),
              let data = try? JSONSerialization.data(withJSONObject: event) else { return nil }
        return (object["to"] as? String, String(decoding: data, as: UTF8.self))
    }
}
