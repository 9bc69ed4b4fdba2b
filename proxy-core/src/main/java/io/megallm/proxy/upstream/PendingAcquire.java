package io.megallm.proxy.upstream;

import io.netty.channel.Channel;
import io.netty.util.concurrent.ScheduledFuture;

import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * One request's claim on an upstream connection, from {@link UpstreamPool#acquire} until its
 * callback hears back or it is cancelled. The state is a CAS because a freed permit is handed
 * over from whichever thread freed it; every other step runs on the pool's loop. Exactly one
 * of these happens: the callback hears back once, or {@link #cancel()} won and it never does.
 */
public final class PendingAcquire {

    /** Returned when an idle connection served the request at once: nothing left to cancel. */
    static final PendingAcquire SERVED = new PendingAcquire(null, null);

    private static final int WAITING = 0;
    private static final int GRANTED = 1;
    private static final int DONE = 2;
    private static final int CANCELLED = 3;

    private final UpstreamPool pool;
    private final AcquireCallback callback;
    private final AtomicInteger state = new AtomicInteger(WAITING);
    private ScheduledFuture<?> timeout;

    PendingAcquire(UpstreamPool pool, AcquireCallback callback) {
        this.pool = pool;
        this.callback = callback;
        if (pool == null) {
            state.set(DONE);
        }
    }

    UpstreamPool pool() {
        return pool;
    }

    void timeout(ScheduledFuture<?> timeout) {
        this.timeout = timeout;
    }

    /**
     * The request no longer wants a connection (its client left). Call on the pool's loop. A
     * waiter leaves the queue; a connection being opened for it goes to the idle set instead;
     * either way the callback is not called.
     */
    public void cancel() {
        if (state.compareAndSet(WAITING, CANCELLED)) {
            stopTimer();
            pool.limiter().left(this);
        } else {
            state.compareAndSet(GRANTED, CANCELLED);
        }
    }

    boolean isWaiting() {
        return state.get() == WAITING;
    }

    /** Takes this waiter out of the running; the winner then serves it a permit or a connection. */
    boolean claim() {
        return state.compareAndSet(WAITING, GRANTED);
    }

    /** The waiter's time is up with no permit: 503. On the pool's loop. */
    void expire() {
        if (state.compareAndSet(WAITING, DONE)) {
            pool.limiter().left(this);
            callback.onAcquireFailed(new IllegalStateException("no free upstream connection"), true);
        }
    }

    /** The queue was full, so this waiter never joined it: 503 at once. On the pool's loop. */
    void refuse() {
        if (state.compareAndSet(WAITING, DONE)) {
            callback.onAcquireFailed(new IllegalStateException("too many requests waiting for an upstream connection"),
                    true);
        }
    }

    /** Called from any thread, after {@link #claim()}, with a permit that now belongs to this waiter. */
    void grant(Permit permit) {
        try {
            pool.loop().execute(() -> {
                stopTimer();
                pool.connect(this, permit);
            });
        } catch (RejectedExecutionException e) {
            // The loop is shutting down: nobody is left to serve, the slot must not be lost.
            permit.release();
        }
    }

    /** Claimed on the pool's loop for a released keep-alive connection of the same loop. */
    void handOver(Channel ch) {
        stopTimer();
        connected(ch, true);
    }

    /** The connection is ready; on the pool's loop. A cancelled request leaves it to the pool. */
    void connected(Channel ch, boolean reused) {
        if (state.compareAndSet(GRANTED, DONE)) {
            callback.onAcquired(ch, reused);
        } else {
            pool.release(ch);
        }
    }

    /** No connection could be made; on the pool's loop. The permit is already back. */
    void failed(Throwable cause) {
        if (state.compareAndSet(GRANTED, DONE)) {
            callback.onAcquireFailed(cause, false);
        }
    }

    /** Skips the queue: a permit was free at once. */
    void granted() {
        state.set(GRANTED);
    }

    private void stopTimer() {
        ScheduledFuture<?> t = timeout;
        if (t != null) {
            timeout = null;
            t.cancel(false);
        }
    }
}
