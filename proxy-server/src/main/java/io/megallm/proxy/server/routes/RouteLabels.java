package io.megallm.proxy.server.routes;

import java.util.Set;

/** Route labels of bounded cardinality for metrics: known paths by name, the rest by family. */
final class RouteLabels {

    private static final Set<String> RELAY = Set.of("/v1/chat/completions", "/v1/completions", "/v1/embeddings",
            "/v1/models", "/v1/responses", "/v1/moderations", "/v1/images/generations", "/v1/audio/speech",
            "/v1/audio/transcriptions");
    private static final Set<String> LOCAL = Set.of("/health", "/metrics", "/docs", "/openapi.json",
            "/admin/reload-keys", "/admin/reset-failed-keys", "/admin/keys");

    private RouteLabels() {
    }

    static String forRelay(String path) {
        if (RELAY.contains(path)) {
            return path;
        }
        return path.startsWith("/v1/models/") ? "/v1/models/{id}" : "/v1/other";
    }

    static String forLocal(String path) {
        if (LOCAL.contains(path)) {
            return path;
        }
        return path.startsWith("/docs/") ? "/docs/*" : "unmatched";
    }
}
