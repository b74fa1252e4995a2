import CFMTensor
import CFMTestSupport
import Foundation
import Testing

@Suite struct SafeTensorsTests {
    /// Writes a hand-built safetensors file: header JSON + raw data.
    func rawFile(header: String, data: [UInt8], in dir: URL, lengthOverride: UInt64? = nil) throws -> URL {
        var bytes = Data()
        withUnsafeBytes(of: (lengthOverride ?? UInt64(header.utf8.count)).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: Array(header.utf8))
        bytes.append(contentsOf: data)
        let url = dir.appendingPathComponent("t.safetensors")
        try bytes.write(to: url)
        return url
    }

    @Test func roundTripIsExactAndDeterministic() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tensors = ["b": Tensor(shape: [2, 3], scalars: [1, -2, 3.5, .pi, 0, -0]),
                       "a\"quoted": Tensor(shape: [], scalars: [7])]
        let u1 = dir.appendingPathComponent("1.safetensors"), u2 = dir.appendingPathComponent("2.safetensors")
        try SafeTensors.write(tensors, metadata: ["k": "v"], to: u1)
        try SafeTensors.write(tensors, metadata: ["k": "v"], to: u2)
        #expect(try Data(contentsOf: u1) == Data(contentsOf: u2))
        let f = try SafeTensors(contentsOf: u1)
        #expect(f.metadata == ["k": "v"])
        #expect(try f.tensor("b") == tensors["b"])
        #expect(try f.tensor("a\"quoted", shape: []) == tensors["a\"quoted"])
        let headerLength = try Data(contentsOf: u1).prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        #expect(headerLength % 8 == 0)
    }

    @Test func halfPrecisionIsWidened() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // F16 1.5 = 0x3E00, −2 = 0xC000; BF16 1.5 = 0x3FC0, −2 = 0xC000 (little-endian bytes).
        let url = try rawFile(
            header: #"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]}}"#,
            data: [0x00, 0x3E, 0x00, 0xC0, 0xC0, 0x3F, 0x00, 0xC0], in: dir)
        let f = try SafeTensors(contentsOf: url)
        #expect(try f.tensor("h").scalars == [1.5, -2])
        #expect(try f.tensor("b").scalars == [1.5, -2])
    }

    @Test func errorsNameTheFileAndKey() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        let path = dir.appendingPathComponent("t.safetensors").path

        // Data shorter than the header promises.
        var url = try rawFile(header: good, data: [0, 0, 0, 0], in: dir)
        #expect(throws: SafeTensorsError.truncated(file: path, detail: "tensor 'w' ends at byte 8 of a 4-byte data section")) {
            try SafeTensors(contentsOf: url)
        }
        // Header length beyond the end of the file.
        url = try rawFile(header: good, data: [], in: dir, lengthOverride: 1 << 40)
        #expect(throws: SafeTensorsError.self) { try SafeTensors(contentsOf: url) }
        // Not JSON.
        url = try rawFile(header: "{not json", data: [], in: dir)
        #expect(throws: SafeTensorsError.badHeader(file: path, detail: "not JSON")) { try SafeTensors(contentsOf: url) }
        // Byte size inconsistent with the shape.
        url = try rawFile(header: #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8), in: dir)
        #expect(throws: SafeTensorsError.self) { try SafeTensors(contentsOf: url) }

        url = try rawFile(header: good, data: Array(repeating: 0, count: 8), in: dir)
        let f = try SafeTensors(contentsOf: url)
        #expect(throws: SafeTensorsError.missingKey(file: path, key: "v")) { try f.tensor("v") }
        #expect(throws: SafeTensorsError.shapeMismatch(file: path, key: "w", expected: [1, 2], found: [2])) {
            try f.tensor("w", shape: [1, 2])
        }
        #expect(SafeTensorsError.shapeMismatch(file: path, key: "w", expected: [1, 2], found: [2]).description
            == "\(path): tensor 'w' has shape [2], expected [1, 2]")

        url = try rawFile(header: #"{"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8), in: dir)
        #expect(throws: SafeTensorsError.unsupportedDType(file: path, key: "i", dtype: "I64")) {
            try SafeTensors(contentsOf: url).tensor("i")
        }
        #expect(throws: SafeTensorsError.self) { try SafeTensors(contentsOf: dir.appendingPathComponent("missing.safetensors")) }
    }

    /// Tensors are read from the file that was opened and validated, even after the path is
    /// replaced (an atomic rewrite of the weights while a model loads).
    @Test func readsTheOpenedFileAfterThePathIsReplaced() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("w.safetensors")
        let original = Tensor(shape: [3], scalars: [1, 2, 3])
        try SafeTensors.write(["w": original], to: url)
        let f = try SafeTensors(contentsOf: url)
        try SafeTensors.write(["w": Tensor(shape: [3], scalars: [7, 8, 9])], to: url)
        #expect(try f.tensor("w") == original)
        #expect(try SafeTensors(contentsOf: url).tensor("w").scalars == [7, 8, 9])
    }
}
