package io.megallm.proxy.upstream;

import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One slot of {@link ConnectionLimiter}, held by one connection attempt and then by the
 * connection it made. Every path that ends the attempt or the connection calls
 * {@link #release()}; only the first call counts, so a path may release without knowing
 * whether another (a close listener, a timer, a failed connect) already has.
 */
final class Permit {

    private final ConnectionLimiter limiter;
    private final AtomicBoolean returned = new AtomicBoolean();

    Permit(ConnectionLimiter limiter) {
        this.limiter = limiter;
    }

    void release() {
        if (returned.compareAndSet(false, true)) {
            limiter.release();
        }
    }
}
