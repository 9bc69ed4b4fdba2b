package io.megallm.proxy.upstream;

import java.net.URI;
import java.net.URISyntaxException;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;

/**
 * An outbound proxy the upstream connections go through (contract §15): {@code http://} (CONNECT
 * for an https upstream, so that TLS runs end to end; requests in absolute form for an http one,
 * see {@link UpstreamPools}), {@code socks5://} (the proxy's client resolves the
 * upstream's name) or {@code socks5h://} (the proxy resolves it), with optional
 * {@code user:password@}. Its text form never shows the password.
 */
public final class EgressProxy {

    public enum Kind { HTTP, SOCKS5, SOCKS5H }

    private final Kind kind;
    private final String host;
    private final int port;
    private final String user;
    private final String password;

    private EgressProxy(Kind kind, String host, int port, String user, String password) {
        this.kind = kind;
        this.host = host;
        this.port = port;
        this.user = user;
        this.password = password;
    }

    /**
     * Parses a proxy URL as httpx and curl read them; a URL without a scheme is taken as
     * {@code http://}. Throws IllegalArgumentException with a message that never holds the password.
     */
    public static EgressProxy parse(String url) {
        String text = url.strip();
        if (!text.contains("://")) {
            text = "http://" + text;
        }
        URI uri;
        try {
            uri = new URI(text);
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException("is not a valid proxy URL");
        }
        String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(java.util.Locale.ROOT);
        Kind kind = switch (scheme) {
            case "http" -> Kind.HTTP;
            case "socks5" -> Kind.SOCKS5;
            case "socks5h" -> Kind.SOCKS5H;
            case "https" -> throw new IllegalArgumentException("an https:// proxy is not supported (use http:// with CONNECT)");
            default -> throw new IllegalArgumentException("the proxy scheme must be http, socks5 or socks5h");
        };
        String host = uri.getHost();
        if (host == null || host.isEmpty()) {
            throw new IllegalArgumentException(uri.getRawAuthority() != null && !uri.getRawAuthority().isEmpty()
                    ? "the proxy URL's host or port is not valid" : "the proxy URL has no host");
        }
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        int port = uri.getPort();
        if (port == -1) {
            port = kind == Kind.HTTP ? 80 : 1080;
        } else if (port < 1 || port > 65535) {
            throw new IllegalArgumentException("the proxy URL's port is out of range (1-65535)");
        }
        String user = null;
        String password = null;
        String info = uri.getRawUserInfo();
        if (info != null && !info.isEmpty()) {
            int colon = info.indexOf(':');
            user = decode(colon < 0 ? info : info.substring(0, colon));
            password = colon < 0 ? "" : decode(info.substring(colon + 1));
        }
        return new EgressProxy(kind, host, port, user, password);
    }

    private static String decode(String s) {
        return URLDecoder.decode(s.replace("+", "%2B"), StandardCharsets.UTF_8);
    }

    public Kind kind() {
        return kind;
    }

    public String host() {
        return host;
    }

    public int port() {
        return port;
    }

    /** The user name, or null without credentials. */
    public String user() {
        return user;
    }

    /** The password, or null without credentials; never logged. */
    public String password() {
        return password;
    }

    /** The name of the upstream goes to the proxy unresolved (HTTP CONNECT, socks5h). */
    public boolean resolvesRemotely() {
        return kind != Kind.SOCKS5;
    }

    @Override
    public String toString() {
        String scheme = kind.name().toLowerCase(java.util.Locale.ROOT);
        String hostText = host.contains(":") ? "[" + host + "]" : host;
        return scheme + "://" + (user != null ? user + ":***@" : "") + hostText + ":" + port;
    }
}
