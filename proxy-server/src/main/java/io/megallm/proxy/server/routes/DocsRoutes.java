package io.megallm.proxy.server.routes;

import io.megallm.proxy.http.Exchange;

/** {@code GET /docs} (Swagger UI from the jar) and {@code GET /openapi.json}. */
final class DocsRoutes {

    /** Answers the request and returns true when {@code path} is a docs path; false otherwise. */
    boolean handle(Exchange exchange, String path) {
        return false;
    }
}
