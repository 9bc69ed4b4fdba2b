package io.megallm.proxy.http;

import java.util.concurrent.TimeUnit;

/**
 * What a client connection may cost in time and number (contract §3): {@code CLIENT_HEADER_TIMEOUT},
 * {@code CLIENT_BODY_TIMEOUT}, {@code KEEPALIVE_TIMEOUT}, {@code SEND_TIMEOUT} in milliseconds
 * (0: no limit), and {@code MAX_CONNECTIONS}.
 */
public record ClientSettings(long headerTimeoutMillis, long bodyTimeoutMillis, long keepAliveTimeoutMillis,
                             long sendTimeoutMillis, int maxConnections) {

    /** No timeout and no cap: for tests and tools that drive a reader by hand. */
    public static final ClientSettings UNLIMITED = new ClientSettings(0, 0, 0, 0, Integer.MAX_VALUE);

    public ClientSettings {
        if (headerTimeoutMillis < 0 || bodyTimeoutMillis < 0 || keepAliveTimeoutMillis < 0 || sendTimeoutMillis < 0) {
            throw new IllegalArgumentException("a timeout is negative");
        }
        if (maxConnections < 1) {
            throw new IllegalArgumentException("maxConnections must be at least 1");
        }
    }

    long headerNanos() {
        return TimeUnit.MILLISECONDS.toNanos(headerTimeoutMillis);
    }

    long bodyNanos() {
        return TimeUnit.MILLISECONDS.toNanos(bodyTimeoutMillis);
    }

    long keepAliveNanos() {
        return TimeUnit.MILLISECONDS.toNanos(keepAliveTimeoutMillis);
    }

    long sendNanos() {
        return TimeUnit.MILLISECONDS.toNanos(sendTimeoutMillis);
    }
}
