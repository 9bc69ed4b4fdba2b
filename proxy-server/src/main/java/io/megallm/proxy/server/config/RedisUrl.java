package io.megallm.proxy.server.config;

import java.net.URI;
import java.net.URISyntaxException;

/**
 * {@code REDIS_URL} (contract §3): {@code redis://[:password@]host:port[/db]} or {@code rediss://…}
 * (TLS). Checked at start, so that a typo stops the start instead of leaving an instance alone
 * for good; the password never leaves this object except towards Redis.
 */
public final class RedisUrl {

    private final String value;
    private final String masked;
    private final boolean tls;
    private final String host;
    private final int port;
    private final int database;
    /** REDIS_CA_FILE: the certificates a rediss:// server's must chain to; null: the JVM's trust. */
    private final java.nio.file.Path caFile;

    private RedisUrl(String value, String masked, boolean tls, String host, int port, int database,
                     java.nio.file.Path caFile) {
        this.value = value;
        this.masked = masked;
        this.tls = tls;
        this.host = host;
        this.port = port;
        this.database = database;
        this.caFile = caFile;
    }

    /** The same URL, its TLS server trusted when its certificate chains to one in {@code pem}. */
    public RedisUrl trusting(java.nio.file.Path pem) {
        return new RedisUrl(value, masked, tls, host, port, database, pem);
    }

    public java.nio.file.Path caFile() {
        return caFile;
    }

    /** @throws IllegalArgumentException with a reason that does not repeat the password */
    public static RedisUrl parse(String text) {
        String v = text.strip();
        URI uri;
        try {
            uri = new URI(v);
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException("is not a URL (redis://[:password@]host:port[/db])");
        }
        String scheme = uri.getScheme();
        if (scheme == null || !(scheme.equalsIgnoreCase("redis") || scheme.equalsIgnoreCase("rediss"))) {
            throw new IllegalArgumentException("must start with redis:// or rediss://");
        }
        if (uri.getHost() == null || uri.getHost().isEmpty()) {
            throw new IllegalArgumentException("has no host (redis://[:password@]host:port[/db])");
        }
        int port = uri.getPort() < 0 ? 6379 : uri.getPort();
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException("has a port outside 1-65535");
        }
        String path = uri.getPath() == null ? "" : uri.getPath();
        int db = 0;
        if (!path.isEmpty() && !path.equals("/")) {
            String digits = path.substring(1);
            if (!digits.matches("[0-9]{1,5}")) {
                throw new IllegalArgumentException("has a database that is not a number (…/0)");
            }
            db = Integer.parseInt(digits);
        }
        if (uri.getRawQuery() != null || uri.getRawFragment() != null) {
            throw new IllegalArgumentException("must not have a query or fragment");
        }
        if (":".equals(uri.getRawUserInfo())) {
            // redis://:@host: an empty password, what the scale compose file makes of an unset
            // REDIS_PASSWORD. It is no password: the URL goes to Redis and the log without it.
            int at = v.indexOf(":@");
            v = v.substring(0, at) + v.substring(at + 2);
        }
        return new RedisUrl(v, maskText(v), scheme.equalsIgnoreCase("rediss"), uri.getHost(), port, db, null);
    }

    /** The text with whatever stands between "//" and "@" replaced: user and password both. */
    public static String maskText(String text) {
        String v = text.strip();
        int start = v.indexOf("//");
        int at = v.lastIndexOf('@');
        if (start < 0 || at < start) {
            return v;
        }
        return v.substring(0, start + 2) + "***@" + v.substring(at + 1);
    }

    /** The URL with its password, for the Redis client only. */
    public String value() {
        return value;
    }

    public String masked() {
        return masked;
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

    public int database() {
        return database;
    }

    @Override
    public String toString() {
        return masked;
    }
}
