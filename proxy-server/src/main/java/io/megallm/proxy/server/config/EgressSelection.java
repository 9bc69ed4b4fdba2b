package io.megallm.proxy.server.config;

import io.megallm.proxy.upstream.EgressProxy;
import io.megallm.proxy.upstream.NoProxy;
import io.megallm.proxy.upstream.UpstreamTarget;

import java.util.Map;

/**
 * Which outbound proxy the upstream connections use (contract §15), read from the environment as
 * the seed's client (httpx) reads it: the variable for the base URL's scheme ({@code HTTPS_PROXY}
 * or {@code HTTP_PROXY}) first, then {@code ALL_PROXY}, each in lower case before upper case;
 * {@code NO_PROXY} (also either case) can exempt the upstream's host.
 */
final class EgressSelection {

    private EgressSelection() {
    }

    /** The proxy to use for {@code target}, or null for direct connections. */
    static EgressProxy select(Map<String, String> env, UpstreamTarget target) throws ConfigError {
        String scheme = target.tls() ? "https_proxy" : "http_proxy";
        for (String name : new String[] {scheme, scheme.toUpperCase(), "all_proxy", "ALL_PROXY"}) {
            String value = env.get(name);
            if (value == null || value.isBlank()) {
                continue;
            }
            String noProxy = firstSet(env, "no_proxy", "NO_PROXY");
            if (NoProxy.parse(noProxy).bypasses(target.host(), target.port(), target.tls())) {
                return null;
            }
            try {
                return EgressProxy.parse(value);
            } catch (IllegalArgumentException e) {
                // The value may hold a password: only its shape is named.
                throw new ConfigError(name + " " + e.getMessage() + " (expected http://, socks5:// or socks5h://"
                        + "[user:password@]host:port)");
            }
        }
        return null;
    }

    private static String firstSet(Map<String, String> env, String a, String b) {
        String v = env.get(a);
        return v != null ? v : env.get(b);
    }
}
