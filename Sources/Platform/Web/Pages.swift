// Pages: the platform's server-rendered pages, from the repository's Mustache templates
// (`Templates/*.mustache`, built into the binary). Values are HTML-escaped by `{{name}}`.
import Mustache

package struct Pages: Sendable {
    let library: MustacheLibrary

    /// Parses the templates; a template that does not parse is a programming error found by
    /// the tests, reported here with its name.
    package init() throws {
        var library = MustacheLibrary()
        for (name, bytes) in [("page", PackageResources.page_mustache), ("home", PackageResources.home_mustache)] {
            try library.register(String(decoding: bytes, as: UTF8.self), named: name)
        }
        self.library = library
    }

    package func render(_ view: Any, _ template: String) -> String {
        library.render(view, withTemplate: template) ?? ""
    }
}

/// The home page: the streams live now (as this node knows them).
package struct HomeView: Sendable {
    package struct Stream: Sendable {
        package var id: String
        package var title: String
        package init(id: String, title: String) {
            self.id = id
            self.title = title
        }
    }
    package let streams: [Stream]
    /// Stored, not computed: templates see stored properties (Mirror).
    package let anyLive: Bool
    package init(streams: [Stream]) {
        self.streams = streams
        self.anyLive = !streams.isEmpty
    }
}
