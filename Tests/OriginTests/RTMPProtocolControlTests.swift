import XCTest
@testable import Origin

/// The protocol control both sessions embed, on its own: no handshake, no chunking.
final class RTMPProtocolControlTests: XCTestCase {
    private func control(_ typeID: UInt8, _ payload: [UInt8]) -> RTMPMessage {
        RTMPMessage(typeID: typeID, streamID: 0, timestamp: 0, payload: payload)
    }

    func testPingRequestIsAnsweredAndOtherUserControlEventsAreReported() throws {
        var sut = RTMPProtocolControl(answersSetPeerBandwidth: false)
        var decoder = RTMPChunkDecoder()
        let ping = try sut.handle(control(4, [0, 6] + be32(0xDEAD_BEEF)), decoder: &decoder)
        XCTAssertEqual(ping?.userControlEvent, .pingRequest(timestamp: 0xDEAD_BEEF))
        XCTAssertEqual(ping?.reply, control(4, [0, 7] + be32(0xDEAD_BEEF)))
        let begin = try sut.handle(control(4, [0, 0, 0, 0, 0, 1]), decoder: &decoder)
        XCTAssertEqual(begin, RTMPProtocolControl.Outcome(reply: nil, userControlEvent: .other(eventType: 0, data: [0, 0, 0, 1])))
        XCTAssertEqual(try sut.handle(control(4, [0, 0]), decoder: &decoder)?.userControlEvent,
                       .other(eventType: 0, data: []), "a short Stream Begin is no error")
        XCTAssertThrowsError(try sut.handle(control(4, [0, 6, 1]), decoder: &decoder)) {
            XCTAssertEqual($0 as? RTMPError, .protocolViolation("Ping Request message has 1 bytes, expected 4"))
        }
    }

    func testAcknowledgesOnceTheWindowIsReached() throws {
        var sut = RTMPProtocolControl(answersSetPeerBandwidth: false)
        var decoder = RTMPChunkDecoder()
        XCTAssertNil(sut.acknowledgement(received: 10_000), "no window, no acknowledgement")
        XCTAssertEqual(try sut.handle(control(5, be32(100)), decoder: &decoder), RTMPProtocolControl.Outcome())
        XCTAssertEqual(sut.peerWindowAcknowledgementSize, 100)
        XCTAssertNil(sut.acknowledgement(received: 99))
        XCTAssertEqual(sut.acknowledgement(received: 100), control(3, be32(100)))
        XCTAssertNil(sut.acknowledgement(received: 199))
        XCTAssertEqual(sut.acknowledgement(received: 250), control(3, be32(250)))
        XCTAssertEqual(sut.acknowledgement(received: 0x1_0000_0200), control(3, be32(0x200)), "the sequence number wraps")
    }

    func testSetPeerBandwidthIsAnsweredOnlyWhenAskedAndChanged() throws {
        var decoder = RTMPChunkDecoder()
        var client = RTMPProtocolControl(answersSetPeerBandwidth: true)
        XCTAssertEqual(try client.handle(control(6, be32(5000) + [2]), decoder: &decoder)?.reply, control(5, be32(5000)))
        XCTAssertEqual(client.peerBandwidth?.window, 5000)
        XCTAssertEqual(client.peerBandwidth?.limitType, 2)
        XCTAssertNil(try client.handle(control(6, be32(5000) + [1]), decoder: &decoder)?.reply, "same window: no answer")
        XCTAssertEqual(try client.handle(control(6, be32(6000) + [1]), decoder: &decoder)?.reply, control(5, be32(6000)))
        XCTAssertNil(try client.handle(control(6, be32(0) + [1]), decoder: &decoder)?.reply, "window 0: no answer")

        var server = RTMPProtocolControl(answersSetPeerBandwidth: false)
        XCTAssertEqual(try server.handle(control(6, be32(5000) + [2]), decoder: &decoder), RTMPProtocolControl.Outcome())
        XCTAssertEqual(server.peerBandwidth?.window, 5000)
    }

    func testChunkSizeAndAbortActOnTheDecoderAndOtherMessagesAreNotControl() throws {
        var sut = RTMPProtocolControl(answersSetPeerBandwidth: false)
        var decoder = RTMPChunkDecoder(limits: RTMPLimits(maxChunkSize: 1000), peerTrusted: false)
        XCTAssertNotNil(try sut.handle(control(1, be32(1000)), decoder: &decoder))
        XCTAssertEqual(decoder.chunkSize, 1000)
        XCTAssertFalse(decoder.isPeerTrusted, "a Set Chunk Size does not lift the before-publish bounds")
        XCTAssertThrowsError(try sut.handle(control(1, be32(1001)), decoder: &decoder)) {
            XCTAssertEqual($0 as? RTMPError, .chunkSizeOutOfRange(1001))
        }
        XCTAssertNotNil(try sut.handle(control(2, be32(6)), decoder: &decoder))
        XCTAssertNotNil(try sut.handle(control(3, be32(6)), decoder: &decoder), "incoming Acknowledgement is ignored")
        for typeID: UInt8 in [8, 9, 15, 17, 18, 20, 22, 99] {
            XCTAssertNil(try sut.handle(control(typeID, [1, 2, 3, 4, 5]), decoder: &decoder), "type \(typeID) is the session's")
        }
    }

    func testMessagesToSend() {
        XCTAssertEqual(RTMPProtocolControl.setChunkSize(4096), control(1, be32(4096)))
        XCTAssertEqual(RTMPProtocolControl.windowAcknowledgementSize(2_500_000), control(5, be32(2_500_000)))
        XCTAssertEqual(RTMPProtocolControl.setPeerBandwidth(2_500_000, limitType: 2), control(6, be32(2_500_000) + [2]))
        XCTAssertEqual(RTMPProtocolControl.streamBegin(streamID: 1), control(4, [0, 0] + be32(1)))
        XCTAssertEqual(RTMPProtocolControl.acknowledgement(7), control(3, be32(7)))
    }
}
