package io.megallm.proxy.upstream;

import java.net.URI;
import java.net.URISyntaxException;
import java.util.Locale;

/** The parsed {@code MEGALLM_BASE_URL}: where connections go and what path prefix requests get. */
public final class UpstreamTarget {

    private final boolean tls;
    private final String host;
    private final int port;
    private final String basePath;
    private final String hostHeader;

    private UpstreamTarget(boolean tls, String host, int port, String basePath) {
        this.tls = tls;
        this.host = host;
        this.port = port;
        this.basePath = basePath;
        boolean defaultPort = (tls && port == 443) || (!tls && port == 80);
        String h = host.indexOf(':') >= 0 ? "[" + host + "]" : host;
        this.hostHeader = defaultPort ? h : h + ":" + port;
    }

    /** @throws IllegalArgumentException with a message fit for an operator */
    public static UpstreamTarget parse(String url) {
        URI uri;
        try {
            uri = new URI(url.trim());
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException("not a valid URL");
        }
        String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
        if (!scheme.equals("http") && !scheme.equals("https")) {
            throw new IllegalArgumentException("the scheme must be http or https");
        }
        if (uri.getRawQuery() != null || uri.getRawFragment() != null || uri.getRawUserInfo() != null) {
            throw new IllegalArgumentException("the URL must not have a query, fragment or user info");
        }
        boolean tls = scheme.equals("https");
        String host = uri.getHost();
        int port = uri.getPort();
        if (host == null) {
            // java.net.URI leaves the host null for names it deems invalid, such as a Compose
            // service name with an underscore; such names resolve fine, so read the authority.
            String authority = uri.getRawAuthority();
            if (authority == null || authority.isEmpty()) {
                throw new IllegalArgumentException("the URL has no host");
            }
            int colon = authority.lastIndexOf(':');
            if (colon > 0 && authority.indexOf(']') < colon) {
                host = authority.substring(0, colon);
                try {
                    port = Integer.parseInt(authority.substring(colon + 1));
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("the port is not a number");
                }
            } else {
                host = authority;
                port = -1;
            }
            if (!host.matches("[A-Za-z0-9._-]+")) {
                throw new IllegalArgumentException("the host is not valid");
            }
        }
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        if (host.isEmpty()) {
            throw new IllegalArgumentException("the URL has no host");
        }
        if (port == -1) {
            port = tls ? 443 : 80;
        } else if (port < 1 || port > 65535) {
            throw new IllegalArgumentException("the port must be between 1 and 65535");
        }
        String path = uri.getRawPath() == null ? "" : uri.getRawPath();
        while (path.endsWith("/")) {
            path = path.substring(0, path.length() - 1);
        }
        return new UpstreamTarget(tls, host, port, path);
    }

    public boolean tls() {
        return tls;
    }

    public String host() {
        return host;
    }

    public int port() {
        return port;
    }

    public String hostHeader() {
        return hostHeader;
    }

    /** The base URL's path, "" or "/…" without a trailing slash: what {@link #pathFor} puts first. */
    public String basePath() {
        return basePath;
    }

    /** Upstream request target for the part of a client URI after {@code /v1}: base path + rest. */
    public String pathFor(String restWithQuery) {
        return basePath + restWithQuery;
    }

    @Override
    public String toString() {
        return (tls ? "https://" : "http://") + hostHeader + basePath;
    }
}
