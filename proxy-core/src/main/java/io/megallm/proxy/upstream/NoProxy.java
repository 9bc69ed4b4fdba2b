package io.megallm.proxy.upstream;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * {@code NO_PROXY} as curl and httpx read it: a comma-separated list of host names (matching the
 * name itself and every name below it: {@code example.com} and {@code .example.com} both cover
 * {@code api.example.com}), IP addresses, and {@code *} for every host. A port after an entry is
 * ignored, as is case.
 */
public final class NoProxy {

    private final boolean all;
    private final List<String> entries;

    private NoProxy(boolean all, List<String> entries) {
        this.all = all;
        this.entries = entries;
    }

    public static NoProxy parse(String value) {
        if (value == null) {
            return new NoProxy(false, List.of());
        }
        boolean all = false;
        List<String> entries = new ArrayList<>();
        for (String raw : value.split(",")) {
            String e = raw.strip().toLowerCase(Locale.ROOT);
            if (e.isEmpty()) {
                continue;
            }
            if (e.equals("*")) {
                all = true;
                continue;
            }
            e = withoutPort(e);
            while (e.startsWith(".")) {
                e = e.substring(1);
            }
            if (e.startsWith("*.")) {
                e = e.substring(2);
            }
            if (!e.isEmpty()) {
                entries.add(e);
            }
        }
        return new NoProxy(all, List.copyOf(entries));
    }

    /** True when connections to {@code host} must not go through the proxy. */
    public boolean bypasses(String host) {
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
        for (String e : entries) {
            if (h.equals(e) || (h.endsWith(e) && h.charAt(h.length() - e.length() - 1) == '.')) {
                return true;
            }
        }
        return false;
    }

    private static String withoutPort(String e) {
        if (e.startsWith("[")) {
            int close = e.indexOf(']');
            return close > 0 ? e.substring(1, close) : e;
        }
        int colon = e.indexOf(':');
        // One colon: host:port. More: a bare IPv6 address, kept whole.
        return colon > 0 && e.indexOf(':', colon + 1) < 0 ? e.substring(0, colon) : e;
    }
}
