package io.megallm.proxy.http;

import io.netty.channel.EventLoop;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * What every client connection of one server shares: the timeouts, one {@link ConnectionWatch} per
 * event loop, and the count of open connections against {@code MAX_CONNECTIONS}.
 */
public final class ClientLimits {

    private final ClientSettings settings;
    private final ConcurrentMap<EventLoop, ConnectionWatch> watches = new ConcurrentHashMap<>();
    private final AtomicInteger open = new AtomicInteger();

    public ClientLimits(ClientSettings settings) {
        this.settings = settings;
    }

    /** Without timeouts or cap. */
    public static ClientLimits unlimited() {
        return new ClientLimits(ClientSettings.UNLIMITED);
    }

    public ClientSettings settings() {
        return settings;
    }

    /** Client connections open now, the refused ones that are still closing included. */
    public int openConnections() {
        return open.get();
    }

    ConnectionWatch watch(EventLoop loop) {
        ConnectionWatch w = watches.get(loop);
        return w != null ? w : watches.computeIfAbsent(loop, ConnectionWatch::new);
    }

    /** Counts a new connection; false when it is one over the cap (it is counted all the same). */
    boolean opened() {
        return open.incrementAndGet() <= settings.maxConnections();
    }

    void closed() {
        open.decrementAndGet();
    }
}
