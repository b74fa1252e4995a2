import CFMService
import CZeroMQ
import Foundation
import XCTest

final class ZeroMQTests: XCTestCase {
    func testMultipartPushPullOverIPC() throws {
        let dir = TempDir()
        let context = try ZMQContext()
        let pull = try ZMQSocket(context, .pull)
        try pull.bind(dir.endpoint("a"))
        let push = try ZMQSocket(context, .push)
        try push.connect(dir.endpoint("a"))
        let parts: [[UInt8]] = [Array("t".utf8), [], [1, 2, 3], [UInt8](repeating: 7, count: 100_000)]
        XCTAssertTrue(try push.send(parts))
        XCTAssertTrue(try pull.pollIn(milliseconds: 2000))
        XCTAssertEqual(try pull.receive(), parts)
        XCTAssertNil(try pull.receive(wait: false))
        XCTAssertFalse(try pull.pollIn(milliseconds: 10))
        push.close(); pull.close()
    }

    func testEphemeralTCPPortAndSubscription() throws {
        let context = try ZMQContext()
        let pub = try ZMQSocket(context, .pub)
        try pub.bind("tcp://127.0.0.1:*")
        let endpoint = try pub.lastEndpoint
        XCTAssertTrue(endpoint.hasPrefix("tcp://127.0.0.1:"), endpoint)
        let sub = try ZMQSocket(context, .sub)
        try sub.subscribe("frame")
        try sub.receiveHighWaterMark(10)
        try sub.connect(endpoint)
        // PUB/SUB joins asynchronously: publish until the subscriber sees a message.
        var got: [[UInt8]]?
        for _ in 0..<200 where got == nil {
            try pub.send([Array("other".utf8), [0]])
            try pub.send([Array("frame.cam".utf8), [1]])
            if try sub.pollIn(milliseconds: 10) { got = try sub.receive() }
        }
        XCTAssertEqual(got, [Array("frame.cam".utf8), [1]])
        try pub.linger(milliseconds: 0)
        pub.close(); sub.close()
    }

    func testTypedErrors() throws {
        let context = try ZMQContext()
        let s = try ZMQSocket(context, .pub)
        XCTAssertThrowsError(try s.bind("nonsense://x")) { error in
            let e = error as? ZMQError
            XCTAssertNotNil(e)
            XCTAssertTrue(e?.description.hasPrefix("zmq_bind(nonsense://x):") ?? false, "\(error)")
        }
        s.close()
        XCTAssertThrowsError(try s.send([[1]]))
        XCTAssertFalse(ZMQContext.version.isEmpty)
    }

    func testNonBlockingSendReportsBackPressure() throws {
        let dir = TempDir()
        let context = try ZMQContext()
        let push = try ZMQSocket(context, .push)
        try push.sendHighWaterMark(1)
        try push.linger(milliseconds: 0)
        try push.bind(dir.endpoint("p")) // nobody connected: PUSH blocks
        XCTAssertFalse(try push.send([[1]], wait: false))
        push.close()
    }
}

final class ReceivedMessageTests: XCTestCase {
    func testPartsStayInPlaceAndExtraPartsAreCountedNotKept() throws {
        let dir = TempDir()
        let context = try ZMQContext()
        let pull = try ZMQSocket(context, .pull)
        try pull.bind(dir.endpoint("r"))
        let push = try ZMQSocket(context, .push)
        try push.connect(dir.endpoint("r"))
        // Small parts live inside the zmq_msg_t itself: they must still read back right.
        let parts: [[UInt8]] = [Array("t".utf8), [], Array(0..<30), [UInt8](repeating: 9, count: 70_000), [1], [2]]
        try push.send(parts)
        XCTAssertTrue(try pull.pollIn(milliseconds: 2000))
        let message = try XCTUnwrap(try pull.receiveMessage(keepingAtMost: 4))
        XCTAssertEqual(message.partCount, 6)
        XCTAssertEqual(message.keptParts, 4)
        XCTAssertEqual(message.withParts { $0.map { Array($0) } }, Array(parts.prefix(4)))
        XCTAssertNil(try pull.receiveMessage(wait: false))
        push.close(); pull.close()
    }

    func testAPartBeyondTheMaximumSizeIsNeverDelivered() throws {
        let context = try ZMQContext()
        let pull = try ZMQSocket(context, .pull)
        try pull.maximumMessageSize(10_000)
        try pull.bind("tcp://127.0.0.1:*")
        let endpoint = try pull.lastEndpoint
        let big = try ZMQSocket(context, .push)
        try big.linger(milliseconds: 0)
        try big.connect(endpoint)
        try big.send([[1], [UInt8](repeating: 0, count: 10_001)])
        XCTAssertFalse(try pull.pollIn(milliseconds: 500))
        big.close()
        let small = try ZMQSocket(context, .push)
        try small.linger(milliseconds: 0)
        try small.connect(endpoint)
        try small.send([[2], [UInt8](repeating: 0, count: 10_000)])
        XCTAssertTrue(try pull.pollIn(milliseconds: 2000))
        XCTAssertEqual(try pull.receive()?.first, [2])
        small.close(); pull.close()
    }
}
