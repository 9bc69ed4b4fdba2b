package io.megallm.proxy.upstream;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * {@code NO_PROXY} as httpx reads it (contract §15 names httpx as the reference): a
 * comma-separated list of host names (matching the name itself and every name below it:
 * {@code example.com} and {@code .example.com} both cover {@code api.example.com}), IP addresses,
 * and {@code *} for every host. An entry with a port ({@code host:8443}) covers that port only,
 * and one with a scheme ({@code http://host}) that scheme only; case is ignored.
 */
public final class NoProxy {

    /** One entry: a host (or suffix), and the port (-1 any) and scheme (null any) it is limited to. */
    private record Entry(String host, int port, Boolean tls) {
    }

    private final boolean all;
    private final List<Entry> entries;

    private NoProxy(boolean all, List<Entry> entries) {
        this.all = all;
        this.entries = entries;
    }

    public static NoProxy parse(String value) {
        if (value == null) {
            return new NoProxy(false, List.of());
        }
        boolean all = false;
        List<Entry> entries = new ArrayList<>();
        for (String raw : value.split(",")) {
            String e = raw.strip().toLowerCase(Locale.ROOT);
            if (e.isEmpty()) {
                continue;
            }
            if (e.equals("*")) {
                all = true;
                continue;
            }
            Boolean tls = null;
            int scheme = e.indexOf("://");
            if (scheme >= 0) {
                String name = e.substring(0, scheme);
                tls = switch (name) {
                    case "https" -> Boolean.TRUE;
                    case "http" -> Boolean.FALSE;
                    default -> null;
                };
                if (tls == null && !name.equals("all")) {
                    continue; // socks5://host and the like name no scheme a base URL can have
                }
                e = e.substring(scheme + 3);
                int slash = e.indexOf('/');
                if (slash >= 0) {
                    e = e.substring(0, slash);
                }
            }
            int port = -1;
            String host = e;
            if (e.startsWith("[")) {
                int close = e.indexOf(']');
                if (close < 0) {
                    continue;
                }
                host = e.substring(1, close);
                port = port(e.substring(close + 1));
            } else {
                int colon = e.indexOf(':');
                // One colon: host:port. More: a bare IPv6 address, kept whole.
                if (colon > 0 && e.indexOf(':', colon + 1) < 0) {
                    host = e.substring(0, colon);
                    port = port(e.substring(colon));
                }
            }
            if (port == -2) {
                continue; // a port that is not one: the entry means nothing, not every port
            }
            while (host.startsWith(".")) {
                host = host.substring(1);
            }
            if (host.startsWith("*.")) {
                host = host.substring(2);
            }
            if (!host.isEmpty()) {
                entries.add(new Entry(host, port, tls));
            }
        }
        return new NoProxy(all, List.copyOf(entries));
    }

    /** ":8080" → 8080; "" → -1 (any); anything else → -2 (not a port). */
    private static int port(String rest) {
        if (rest.isEmpty()) {
            return -1;
        }
        if (!rest.startsWith(":") || rest.length() < 2 || rest.length() > 6) {
            return -2;
        }
        try {
            int p = Integer.parseInt(rest.substring(1));
            return p > 0 && p <= 65535 ? p : -2;
        } catch (NumberFormatException e) {
            return -2;
        }
    }

    /** As {@link #bypasses(String, int, Boolean)} with no port or scheme known: entries limited to one do not count. */
    public boolean bypasses(String host) {
        return bypasses(host, -1, null);
    }

    /** True when connections to {@code host:port} over {@code tls} (or not) must not go through the proxy. */
    public boolean bypasses(String host, int port, Boolean tls) {
        if (all) {
            return true;
        }
        String h = host.toLowerCase(Locale.ROOT);
        if (h.startsWith("[") && h.endsWith("]")) {
            h = h.substring(1, h.length() - 1);
        }
        while (h.endsWith(".")) {
            h = h.substring(0, h.length() - 1);
        }
        for (Entry e : entries) {
            String name = e.host();
            boolean hostMatches = h.equals(name)
                    || (h.endsWith(name) && h.charAt(h.length() - name.length() - 1) == '.');
            if (hostMatches && (e.port() < 0 || e.port() == port) && (e.tls() == null || e.tls().equals(tls))) {
                return true;
            }
        }
        return false;
    }
}
