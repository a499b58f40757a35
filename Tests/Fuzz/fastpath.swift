// libFuzzer target: the edge's fast path for cached media (Sources/Live/MediaFastPath.swift), on
// the bytes a client sends before the HTTP decoder sees them: the scan for a whole request head,
// the decision on a head (answer from memory, leave it to the decoder, or hand every byte over
// when a body follows) and the target's parsing (`MediaObjectRequest`). The first byte cuts the
// rest into reads as TCP may; the reads go through the steps of `RawMediaFastPath.process`.
// Checked after every step:
// - an incomplete head is held only up to `maxHead` bytes (past it the handler passes through);
// - a head ends at its first blank line, and a scan that goes on from where the last read stopped
//   finds what a scan of all the bytes finds;
// - an answer is only given where the file's contract allows it, checked here on the head's bytes
//   with a parser of this file's own; the source is asked for the path, token and session the
//   target names; and a target is taken by `MediaObjectRequest` exactly when the contract says.
// Built with MediaFastPath.swift and the files it uses by ops/fuzz (`swiftc -sanitize=fuzzer,address`,
// NIO and Hummingbird from the SwiftPM build).
import Foundation
import NIOCore

/// The request the source was last asked for (the fuzzer runs one input at a time).
nonisolated(unsafe) var asked: MediaObjectRequest?
let cached = ByteBuffer(bytes: Array("moofmdat".utf8))
nonisolated(unsafe) let typed = MediaFastPath(source: MediaFastPathClosureSource { request in
    asked = request
    return cached
})
nonisolated(unsafe) let raw = RawMediaFastPath(typed: typed)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard count > 0 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data + 1, count: count - 1))
    let step = Int(data[0]) * 67 % 4096 + 1
    var pending = ByteBuffer(), scanned = 0, received = 0
    reads: while received < input.count {
        let n = min(step, input.count - received)
        pending.writeBytes(input[received..<received + n])
        received += n
        while pending.readableBytes > 0 {
            let scan = RawMediaFastPath.scanHead(pending, from: scanned)
            if case .incomplete(let upTo) = scan {
                // Checked on the whole bytes once the head is found (or at the end): a check of them all
                // after every read would cost the square of a head cut into single bytes.
                precondition(upTo >= scanned && upTo <= pending.readableBytes, "scanned up to \(upTo) of \(pending.readableBytes)")
                if pending.readableBytes > RawMediaFastPath.maxHead { break reads }  // pass-through from here on
                scanned = upTo
                continue reads
            }
            precondition(scan == RawMediaFastPath.scanHead(pending, from: 0), "a scan resumed at \(scanned) finds \(scan), a whole scan does not")
            switch scan {
            case .incomplete:
                preconditionFailure()
            case .lenient:
                let bytes = Array(pending.readableBytesView)
                precondition(hasBareLineEnd(Array(bytes.prefix(blankLine(in: bytes) ?? bytes.count))), "a lenient head with no bare CR or LF")
                break reads
            case .complete(let length):
                // The head's bytes only: pipelined heads would otherwise each copy all that follows them.
                let bytes = Array(pending.readableBytesView.prefix(length))
                precondition(length == blankLine(in: bytes) && !hasBareLineEnd(bytes), "a head of \(length) bytes, its blank line ends at \(blankLine(in: bytes) ?? -1)")
                scanned = 0
                let head = pending.readSlice(length: length)!
                asked = nil
                switch raw.classify(head) {
                case .answer:
                    let target = answerableTarget(Array(head.readableBytesView))
                    precondition(target != nil, "the fast path answers a request its contract leaves to the router")
                    precondition(asked.map { $0 == MediaObjectRequest(target: target!) } == true, "the source was asked for another request")
                    check(target!)
                case .forward:
                    if let target = answerableTarget(Array(head.readableBytesView)) {
                        // Eligible by its head: only the source's no (never here) or a bad target leaves it to the router.
                        precondition(MediaObjectRequest(target: target) == nil, "an answerable request goes to the router")
                        check(target)
                    }
                case .bodyFollows:
                    break reads  // the decoder has every byte from here on
                }
            }
            precondition(pending.readableBytes <= RawMediaFastPath.maxHead + step, "holding \(pending.readableBytes) bytes")
        }
    }
    if received == input.count, pending.readableBytes > 0, case .incomplete = RawMediaFastPath.scanHead(pending, from: scanned) {
        let bytes = Array(pending.readableBytesView)
        precondition(RawMediaFastPath.scanHead(pending, from: 0) == RawMediaFastPath.scanHead(pending, from: scanned), "a resumed scan differs")
        precondition(blankLine(in: bytes) == nil && !hasBareLineEnd(bytes), "an incomplete head that is not")
    }
    return 0
}

/// Where the first blank line (CR LF CR LF) ends, if there is one.
func blankLine(in b: [UInt8]) -> Int? {
    guard b.count >= 4 else { return nil }
    for i in 3..<b.count where b[i] == 10 && b[i - 1] == 13 && b[i - 2] == 10 && b[i - 3] == 13 { return i + 1 }
    return nil
}

/// Whether a CR is followed by anything but LF, or an LF comes without its CR.
func hasBareLineEnd(_ b: [UInt8]) -> Bool {
    for i in b.indices {
        if b[i] == 13, i + 1 < b.count, b[i + 1] != 10 { return true }
        if b[i] == 10, i == 0 || b[i - 1] != 13 { return true }
    }
    return false
}

/// The target of a head that the contract lets the fast path answer by its head alone: a GET
/// over HTTP/1.1, no body, no close, no upgrade or expectation, header lines a strict parser takes.
func answerableTarget(_ head: [UInt8]) -> String? {
    var lines: [ArraySlice<UInt8>] = [], start = 0
    for i in head.indices where head[i] == 10 {
        lines.append(head[start..<i - 1])  // without its CR: a complete head has no bare line end
        start = i + 1
    }
    let request = lines[0].split(separator: 32, omittingEmptySubsequences: false)
    guard request.count == 3, request[0].elementsEqual("GET".utf8), request[2].elementsEqual("HTTP/1.1".utf8) else { return nil }
    let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
    for line in lines.dropFirst() where !line.isEmpty {
        guard let colon = line.firstIndex(of: 58), colon > line.startIndex, line[..<colon].allSatisfy(tchar.contains) else { return nil }
        let name = String(decoding: line[..<colon], as: UTF8.self).lowercased()
        var value = line[(colon + 1)...]
        while let f = value.first, f == 32 || f == 9 { value = value.dropFirst() }
        while let l = value.last, l == 32 || l == 9 { value = value.dropLast() }
        switch name {
        case "content-length": if !value.elementsEqual("0".utf8) { return nil }
        case "transfer-encoding", "upgrade", "expect": return nil
        case "connection": if String(decoding: value.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }, as: UTF8.self).contains("close") { return nil }
        default: break
        }
    }
    return String(decoding: request[1], as: UTF8.self)
}

/// A target's parse agrees with the contract: `/live/{id}/{rendition}/{object}`, the object an
/// init segment, segment or part named canonically, a query of at most one `token=` and one `vsid=`.
func check(_ target: String) {
    let parsed = MediaObjectRequest(target: target)
    // On the bytes, as the contract is written (a character may join a `/` or a `?` to a mark after it).
    let bytes = Array(target.utf8)
    let q = bytes.firstIndex(of: UInt8(ascii: "?"))
    let path = bytes[..<(q ?? bytes.count)]
    let parts = path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
    let items = q.map { bytes[($0 + 1)...].split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: false) } ?? []
    let tokens = items.filter { $0.starts(with: "token=".utf8) }, sessions = items.filter { $0.starts(with: "vsid=".utf8) }
    let text = { (b: ArraySlice<UInt8>) in String(decoding: b, as: UTF8.self) }
    let allowed = parts.count == 5 && parts[0].isEmpty && parts[1].elementsEqual("live".utf8) && !parts[2].isEmpty && !parts[3].isEmpty
        && MediaName(text(parts[4]))?.isImmutable == true
        && tokens.count <= 1 && sessions.count <= 1 && tokens.count + sessions.count == items.count
    precondition((parsed != nil) == allowed, "MediaObjectRequest(target: \(target.debugDescription)) is \(parsed.debugDescription); the contract says \(allowed)")
    guard let parsed else { return }
    precondition(parsed.path == text(path) && parsed.streamID == text(parts[2]), "\(parsed) for \(target.debugDescription)")
    precondition(parsed.token.map { Array($0.utf8) } == tokens.first.map { Array($0.dropFirst(6)) }, "token \(parsed.token.debugDescription)")
    precondition(parsed.session == sessions.first.flatMap { ViewerSessionID(utf8: $0.dropFirst(5)) }, "session \(parsed.session.debugDescription)")
}

/// Requests as players and clients send them: plain and pipelined GETs of parts and segments,
/// with a token and a session; a playlist; a POST with a body; a close; lines ended by LF alone.
func writeSeeds(to dir: String) {
    let get = { (target: String, extra: String) in "GET \(target) HTTP/1.1\r\nHost: edge.example:8080\r\nUser-Agent: AppleCoreMedia/1.0\r\nAccept: */*\r\n\(extra)\r\n" }
    let part = "/live/st_8fK2mQ/720p/part12.3-1f2a3b4c.m4s"
    let seeds: [(String, UInt8, String)] = [
        ("part", 255, get(part, "")),
        ("part-token-session", 255, get(part + "?token=eyJhbGciOi.eyJzdHJlYW0iOi.c2lnbmF0dXJl&vsid=AbCdEfGhIjKlMnOpQrSt", "")),
        ("pipelined", 7, get("/live/st_8fK2mQ/720p/seg12-1f2a3b4c.m4s", "") + get("/live/st_8fK2mQ/source/init0-1f2a3b4c.mp4", "Connection: keep-alive\r\n")
            + get(part, "Content-Length: 0\r\n")),
        ("playlist", 255, get("/live/st_8fK2mQ/720p/index.m3u8?_HLS_msn=12&_HLS_part=3", "")),
        ("post-body", 3, "POST /api/v1/streams HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}" + get(part, "")),
        ("close", 255, get(part, "Connection: Close\r\n")),
        ("lenient", 255, "GET \(part) HTTP/1.1\nHost: a\n\n"),
    ]
    for (name, first, text) in seeds {
        _ = FileManager.default.createFile(atPath: "\(dir)/\(name)", contents: Data([first] + Array(text.utf8)))
    }
}
