package io.megallm.proxy.upstream;

import io.netty.channel.Channel;

/** Receives the result of {@link UpstreamPool#acquire}; called on the pool's event loop. */
public interface AcquireCallback {

    /** A connected (and, for https, handshaken) connection; {@code reused} when it came from the idle set. */
    void onAcquired(Channel channel, boolean reused);

    /**
     * No connection: {@code exhausted} when the pool stayed full for the whole wait,
     * otherwise a connect or handshake failure.
     */
    void onAcquireFailed(Throwable cause, boolean exhausted);
}
