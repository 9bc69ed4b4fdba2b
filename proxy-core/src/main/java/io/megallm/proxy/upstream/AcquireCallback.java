package io.megallm.proxy.upstream;

import io.netty.channel.Channel;

/**
 * Receives the result of {@link UpstreamPool#acquire}: exactly one of the two methods, once, on
 * the pool's event loop, unless the {@link PendingAcquire} was cancelled first (then neither).
 */
public interface AcquireCallback {

    /** A connected (and, for https, handshaken) connection; {@code reused} when it came from the idle set. */
    void onAcquired(Channel channel, boolean reused);

    /**
     * No connection: {@code exhausted} when the pool stayed full for the whole wait or too many
     * requests were waiting already; otherwise a connect or handshake failure or timeout
     * ({@link io.netty.channel.ConnectTimeoutException}).
     */
    void onAcquireFailed(Throwable cause, boolean exhausted);
}
