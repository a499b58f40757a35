// AudioConversion: audio from the publisher that is not AAC, turned into AAC so that every
// rendition carries AAC. Holds the encoder of one publishing session and where its output
// timeline starts; the AAC frames it makes are timed by the samples counted since.

/// The AAC encoding of a session's non-AAC audio.
struct AudioConversion {
    private let transcoder: any AACEncoder
    /// The timestamp of the first input, and the AAC samples made since.
    private let base: UInt32
    private var samples: Int64 = 0

    /// Starts converting from the first non-AAC tag of a session, at its timestamp, with an
    /// encoder made by `make` (none: this audio cannot be carried).
    init(from tag: FLVAudioTag, at timestamp: UInt32, make: Transcoders.MakeAAC?) throws(PackagingError) {
        do {
            guard let make else { throw PackagingError.unsupportedAudioCodec(tag.soundFormat) }
            transcoder = try make(tag.soundFormat, tag.sampleRate, Int(tag.channels), Int(tag.soundSize))
        } catch {
            throw .unsupportedAudioCodec(tag.soundFormat)
        }
        base = timestamp
    }

    /// The AAC sequence header of what this conversion makes.
    var sequenceHeader: FLVAudioTag {
        FLVAudioTag(soundFormat: 10, soundRate: 3, soundSize: 16, channels: 2, packet: .aacSequenceHeader(transcoder.audioSpecificConfig))
    }

    /// Encodes a payload of input audio; returns the AAC frames ready, timed on the output timeline.
    mutating func convert(_ payload: [UInt8]) -> [RungAudio.Frame] {
        var out: [RungAudio.Frame] = []
        for frame in transcoder.push(payload) {
            let ts = base &+ UInt32(truncatingIfNeeded: samples * 1000 / Int64(transcoder.outputSampleRate))
            samples += 1024
            out.append((FLVAudioTag(soundFormat: 10, soundRate: 3, soundSize: 16, channels: 2, packet: .aacRaw(frame)), ts))
        }
        return out
    }
}
