// Network coordinates: convergence on a known geometry, robustness to bad input.

import XCTest
@testable import Gossip

final class VivaldiTests: XCTestCase {
    func testNewCoordinateStartsAtOriginWithMaxError() {
        let c = VivaldiCoordinate()
        XCTAssertEqual(c.vector, Array(repeating: 0, count: 8))
        XCTAssertEqual(c.error, 1.5)
        XCTAssertEqual(c.height, 10e-6)
        XCTAssertTrue(c.isValid)
        XCTAssertEqual(c.distance(to: c), .seconds(double: 20e-6))
    }

    func testDistanceIsSymmetricAndIncludesHeights() {
        let a = VivaldiCoordinate(vector: [0.003, 0.004] + Array(repeating: 0, count: 6), error: 1, adjustment: 0, height: 0.001)
        let b = VivaldiCoordinate(vector: Array(repeating: 0, count: 8), error: 1, adjustment: 0, height: 0.002)
        XCTAssertEqual(a.distance(to: b), b.distance(to: a))
        XCTAssertEqual(a.distance(to: b).seconds, 0.005 + 0.003, accuracy: 1e-9)
        // A negative total adjustment is ignored when it would make the distance negative.
        var c = a
        c.adjustment = -1
        XCTAssertEqual(c.distance(to: b).seconds, 0.008, accuracy: 1e-9)
    }

    /// Four nodes on a square of 10 ms sides (diagonals 14.1 ms): every node's coordinate
    /// converges so that distances predict the RTTs.
    func testConvergesOnASquare() {
        let rtt: [[Double]] = {
            let p = [(0.0, 0.0), (0.01, 0.0), (0.0, 0.01), (0.01, 0.01)]
            return p.map { a in p.map { b in ((a.0 - b.0) * (a.0 - b.0) + (a.1 - b.1) * (a.1 - b.1)).squareRoot() } }
        }()
        var clients = (0..<4).map { _ in VivaldiClient() }
        var rng = GossipRandom(seed: 1)
        for _ in 0..<1000 {
            for i in 0..<4 {
                let j = (i + Int.random(in: 1...3, using: &rng)) % 4
                let other = clients[j].coordinate
                clients[i].update(peer: NodeID("n\(j)"), other: other, rtt: .seconds(double: rtt[i][j]), rng: &rng)
            }
        }
        for i in 0..<4 {
            for j in 0..<4 where i != j {
                let est = clients[i].coordinate.distance(to: clients[j].coordinate).seconds
                XCTAssertEqual(est, rtt[i][j], accuracy: rtt[i][j] * 0.15, "\(i)→\(j)")
            }
            XCTAssertLessThan(clients[i].coordinate.error, 0.5, "error estimate falls as predictions improve")
        }
    }

    func testArithmeticWithoutArraysIsBitForBitTheSame() {
        var rng = GossipRandom(seed: 77)
        let config = VivaldiConfig()
        for _ in 0..<500 {
            func random() -> VivaldiCoordinate {
                VivaldiCoordinate(
                    vector: (0..<8).map { _ in Double.random(in: -0.1..<0.1, using: &rng) }, error: 1, adjustment: 0,
                    height: Double.random(in: 0..<0.01, using: &rng))
            }
            let a = random(), b = random()
            let force = Double.random(in: -0.05..<0.05, using: &rng)
            XCTAssertEqual(
                VivaldiCoordinate.euclidean(a.vector, b.vector),
                VivaldiCoordinate.magnitude(VivaldiCoordinate.difference(a.vector, b.vector)))
            // The definition: move along the unit vector from b to a.
            var copy = rng
            let (unit, magnitude) = VivaldiCoordinate.unitVector(from: b.vector, to: a.vector, rng: &copy)
            var expected = a
            for i in expected.vector.indices { expected.vector[i] += unit[i] * force }
            expected.height = max((expected.height + b.height) * force / magnitude + expected.height, config.heightMin)
            XCTAssertEqual(a.applying(force: force, from: b, config: config, rng: &rng), expected)
        }
    }

    func testBadObservationsAreRejected() {
        var client = VivaldiClient()
        var rng = GossipRandom(seed: 2)
        var nan = VivaldiCoordinate()
        nan.vector[0] = .nan
        client.update(peer: "x", other: nan, rtt: .milliseconds(10), rng: &rng)
        client.update(peer: "x", other: VivaldiCoordinate(vector: [0, 0], error: 1, adjustment: 0, height: 0), rtt: .milliseconds(10), rng: &rng)
        client.update(peer: "x", other: VivaldiCoordinate(), rtt: .seconds(-1), rng: &rng)
        client.update(peer: "x", other: VivaldiCoordinate(), rtt: .seconds(60), rng: &rng)
        XCTAssertEqual(client.rejectedUpdates, 4)
        XCTAssertEqual(client.coordinate, VivaldiCoordinate())
        // A sane sample moves the coordinate, using the seeded generator to break symmetry.
        client.update(peer: "x", other: VivaldiCoordinate(), rtt: .milliseconds(10), rng: &rng)
        XCTAssertNotEqual(client.coordinate.vector, VivaldiCoordinate().vector)
        XCTAssertTrue(client.coordinate.isValid)
    }

    func testTheMeasuredRoundTripIsTheMedianOfTheLastProbes() {
        var client = VivaldiClient()
        var rng = GossipRandom(seed: 3)
        XCTAssertNil(client.measuredRTT(peer: "x"))
        // 80 ms, one ack held up on the way, 82 ms: the held-up one is not the measure.
        for ms in [80, 400, 82] { client.update(peer: "x", other: VivaldiCoordinate(), rtt: .milliseconds(ms), rng: &rng) }
        XCTAssertEqual(client.measuredRTT(peer: "x")?.seconds ?? 0, 0.082, accuracy: 1e-9)
        // The window is the last three: an old sample leaves it.
        for ms in [240, 250] { client.update(peer: "x", other: VivaldiCoordinate(), rtt: .milliseconds(ms), rng: &rng) }
        XCTAssertEqual(client.measuredRTT(peer: "x")?.seconds ?? 0, 0.240, accuracy: 1e-9)
        XCTAssertNil(client.measuredRTT(peer: "y"))
        // Rejected samples are not measurements; a forgotten peer has none.
        client.update(peer: "y", other: VivaldiCoordinate(), rtt: .seconds(60), rng: &rng)
        XCTAssertNil(client.measuredRTT(peer: "y"))
        client.forget(peer: "x")
        XCTAssertNil(client.measuredRTT(peer: "x"))
    }
}
