// CatalogChanges: the service that keeps this node's stream records in step with what other
// nodes sharing the database change (`StreamCatalog.followChanges`), from start to shutdown.
import Catalog
import ServiceLifecycle

package struct CatalogChanges: Service {
    let catalog: StreamCatalog

    package func run() async throws {
        await cancelWhenGracefulShutdown {
            await catalog.followChanges()
        }
    }
}
