// Pages: the platform's server-rendered pages, from the repository's Mustache templates
// (`Templates/*.mustache`, built into the binary). Values are HTML-escaped by `{{name}}`.
import Crypto
import Foundation
import Accounts
import HTTPSupport
import Hummingbird
import Mustache

package struct Pages: Sendable {
    let library: MustacheLibrary

    /// Parses the templates; a template that does not parse is a programming error found by
    /// the tests, reported here with its name.
    package init() throws {
        var library = MustacheLibrary()
        for (name, bytes) in [("page", PackageResources.page_mustache), ("home", PackageResources.home_mustache),
                              ("signup", PackageResources.signup_mustache), ("signin", PackageResources.signin_mustache),
                              ("providers", PackageResources.providers_mustache), ("message", PackageResources.message_mustache),
                              ("reset_request", PackageResources.reset_request_mustache),
                              ("reset_form", PackageResources.reset_form_mustache), ("settings", PackageResources.settings_mustache),
                              ("studio", PackageResources.studio_mustache), ("link", PackageResources.link_mustache),
                              ("upcoming", PackageResources.upcoming_mustache), ("schedule", PackageResources.schedule_mustache),
                              ("picture", PackageResources.picture_mustache),
                              ("channel", PackageResources.channel_mustache),
                              ("recordings", PackageResources.recordings_mustache), ("recording", PackageResources.recording_mustache),
                              ("invitations", PackageResources.invitations_mustache), ("join", PackageResources.join_mustache),
                              ("cohosts", PackageResources.cohosts_mustache),
                              ("paywall", PackageResources.paywall_mustache), ("pay_test", PackageResources.pay_test_mustache),
                              ("price", PackageResources.price_mustache), ("earnings", PackageResources.earnings_mustache),
                              ("purchases", PackageResources.purchases_mustache), ("subscription", PackageResources.subscription_mustache),
                              ("receipt", PackageResources.receipt_mustache), ("analytics", PackageResources.analytics_mustache)] {
            try library.register(String(decoding: bytes, as: UTF8.self), named: name)
        }
        self.library = library
    }

    /// The one stylesheet and the small script every page has, named by a digest of their bytes (cached for good).
    package static let stylesheet: [UInt8] = PackageResources.site_css
    package static let script: [UInt8] = PackageResources.site_js
    package static let stylesheetPath = "/assets/site.css?v=" + digest(stylesheet)
    package static let scriptPath = "/assets/site.js?v=" + digest(script)

    static func digest(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).prefix(6).map { String(format: "%02x", $0) }.joined()
    }

    package func render(_ view: Any, _ template: String) -> String {
        library.render(view, withTemplate: template) ?? ""
    }
}

/// Renders a page in the layout: who is signed in (for the header), the anti-forgery token
/// for forms, a notice named by `?done=` or an error, the sign-in providers' buttons.
package struct PageRenderer: Sendable {
    package let pages: Pages
    let service: AccountService?
    let providers: [ProviderLink]

    package init(pages: Pages, service: AccountService?, providers: [ProviderLink] = []) {
        self.pages = pages
        self.service = service
        self.providers = providers
    }

    func site(_ request: Request, _ context: NodeRequestContext, error: String? = nil) async throws -> [String: Any] {
        var site: [String: Any] = ["css": Pages.stylesheetPath, "js": Pages.scriptPath, "csrf": context.csrfToken ?? "",
                                   "signedIn": false]
        if let service, let caller = context.account, caller.sessionID != nil, let a = try await service.account(id: caller.accountID) {
            site["signedIn"] = true
            site["name"] = a.displayName
            site["broadcaster"] = a.role != .viewer
        }
        if let done = request.uri.queryParameters.get("done"), let notice = AccountPages.notices[done] { site["notice"] = notice }
        if let error { site["error"] = error }
        return site
    }

    package func render(_ template: String, _ values: [String: Any], _ request: Request, _ context: NodeRequestContext,
                        error: String? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        var view = values
        view["site"] = try await site(request, context, error: error)
        view["providers"] = providers.map { ["id": $0.id, "name": $0.name, "next": values["next"] ?? ""] as [String: Any] }
        view["anyProviders"] = !providers.isEmpty
        var response = Responses.html(pages.render(view, template), status: status)
        response.headers[.cacheControl] = "no-store"
        return response
    }
}
