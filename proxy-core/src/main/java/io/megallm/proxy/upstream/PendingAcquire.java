package io.megallm.proxy.upstream;

import io.netty.util.concurrent.ScheduledFuture;

/** A request waiting for a connection permit. */
final class PendingAcquire {

    private final UpstreamPool pool;
    private final AcquireCallback callback;
    private ScheduledFuture<?> timeout;

    PendingAcquire(UpstreamPool pool, AcquireCallback callback) {
        this.pool = pool;
        this.callback = callback;
    }

    void timeout(ScheduledFuture<?> timeout) {
        this.timeout = timeout;
    }

    /** Called from any thread with a permit that now belongs to this waiter. */
    void grant() {
        pool.loop().execute(() -> {
            if (timeout != null) {
                timeout.cancel(false);
            }
            pool.connectWithPermit(callback);
        });
    }

    AcquireCallback callback() {
        return callback;
    }
}
