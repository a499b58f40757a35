// ThumbnailUpload: `PUT` and `DELETE` of a stream's thumbnail, as the public API
// (`/api/v1/streams/{id}/thumbnail`, the owner or an admin) and the operator API
// (`/api/streams/{id}/thumbnail`) both answer them once the stream is found; a recording's
// (`/api/v1/recordings/{id}/thumbnail`) is read and checked the same way, kept elsewhere.
import Foundation
import HTTPSupport
import Hummingbird
import Live
import NIOCore
import Transcode

enum ThumbnailUpload {
    /// The most read of an upload: more is refused (413) without being read.
    static let limit = 5 << 20
    static let types = ["image/jpeg", "image/png", "image/webp"]

    /// Reads the image (bounded), has it checked, decoded and re-encoded, and keeps the result.
    static func put(_ request: Request, id: String, thumbnails: Thumbnails) async throws -> Response {
        try await put(request) { image in try await thumbnails.upload(id: id, image: image) }
    }

    /// Reads the image (bounded) and hands it to `keep`, which makes and keeps the picture.
    static func put(_ request: Request, keep: @Sendable ([UInt8]) async throws -> Void) async throws -> Response {
        let type = request.headers[.contentType]?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        guard let type, types.contains(type) else {
            throw Problem(.unsupportedMediaType, "send the image's bytes with Content-Type image/jpeg, image/png or image/webp")
        }
        let tooLarge = Problem(.contentTooLarge, "the image is larger than \(limit >> 20) MiB: send a smaller one (a thumbnail is shown at most 640x360)")
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit { throw tooLarge }
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: limit) } catch let e as any HTTPResponseError where e.status == .contentTooLarge { throw tooLarge }
        do {
            try await keep(Array(buffer: body))
        } catch let e as ThumbnailError {
            throw Problem.badRequest(e.description)
        }
        return Response(status: .noContent)
    }

    /// Forgets an uploaded thumbnail: pictures of the live stream are shown again, on every node.
    static func delete(id: String, thumbnails: Thumbnails) async throws -> Response {
        try await thumbnails.useLive(id: id)
        return Response(status: .noContent)
    }
}

extension ThumbnailMakers {
    /// FFmpeg's: libavcodec decoders, libswscale, the MJPEG encoder (`Transcode.Thumbnailer`).
    static let ffmpeg = ThumbnailMakers(
        fromKeyframe: { avcC, accessUnit in try Thumbnailer.fromKeyframe(avcC: avcC, accessUnit: accessUnit) },
        fromImage: { bytes in try Thumbnailer.fromImage(bytes) })
}
