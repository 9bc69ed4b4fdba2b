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
        String host = uri.getHost();
        if (host == null || host.isEmpty()) {
            throw new IllegalArgumentException("the URL has no host");
        }
        if (uri.getRawQuery() != null || uri.getRawFragment() != null || uri.getRawUserInfo() != null) {
            throw new IllegalArgumentException("the URL must not have a query, fragment or user info");
        }
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        boolean tls = scheme.equals("https");
        int port = uri.getPort() > 0 ? uri.getPort() : (tls ? 443 : 80);
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

    /** Upstream request target for the part of a client URI after {@code /v1}: base path + rest. */
    public String pathFor(String restWithQuery) {
        return basePath + restWithQuery;
    }

    @Override
    public String toString() {
        return (tls ? "https://" : "http://") + hostHeader + basePath;
    }
}
