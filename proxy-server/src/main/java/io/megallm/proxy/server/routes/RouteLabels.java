package io.megallm.proxy.server.routes;

import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.stream.Collectors;

/**
 * Route labels of bounded cardinality for metrics: known paths by name, the rest by family.
 * Labels are these constants, never the request's own string, so that the metrics' map lookup
 * per request finds a cached hash and an identical key.
 */
final class RouteLabels {

    private static final Map<String, String> RELAY = labels("/v1/chat/completions", "/v1/completions",
            "/v1/embeddings", "/v1/models", "/v1/responses", "/v1/moderations", "/v1/images/generations",
            "/v1/audio/speech", "/v1/audio/transcriptions");
    private static final Map<String, String> LOCAL = labels("/health", "/metrics", "/docs", "/openapi.json",
            "/admin/reload-keys", "/admin/reset-failed-keys", "/admin/keys", "/admin/usage", "/admin/");

    private RouteLabels() {
    }

    private static Map<String, String> labels(String... paths) {
        return Set.of(paths).stream().collect(Collectors.toUnmodifiableMap(Function.identity(), Function.identity()));
    }

    static String forRelay(String path) {
        String known = RELAY.get(path);
        if (known != null) {
            return known;
        }
        return path.startsWith("/v1/models/") ? "/v1/models/{id}" : "/v1/other";
    }

    /** True for a known API path given without its /v1 (a client whose base URL lacks it). */
    static boolean knownWithoutV1(String path) {
        int q = path.indexOf('?');
        return RELAY.containsKey("/v1" + (q < 0 ? path : path.substring(0, q)));
    }

    static String forLocal(String path) {
        String known = LOCAL.get(path);
        if (known != null) {
            return known;
        }
        if (path.startsWith("/docs/")) {
            return "/docs/*";
        }
        return path.equals("/admin") || path.startsWith("/admin/dashboard.") || path.equals("/admin/index.html")
                ? "/admin/" : "unmatched";
    }
}
