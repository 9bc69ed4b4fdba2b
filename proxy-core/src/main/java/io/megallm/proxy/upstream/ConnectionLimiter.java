package io.megallm.proxy.upstream;

import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The global cap on open upstream connections ({@code HTTP_POOL_MAXSIZE}) shared by the pools
 * of all event loops. A freed permit goes straight to the oldest waiter, on the waiter's loop.
 */
final class ConnectionLimiter {

    private final int max;
    private final AtomicInteger open = new AtomicInteger();
    private final ConcurrentLinkedQueue<PendingAcquire> waiters = new ConcurrentLinkedQueue<>();

    ConnectionLimiter(int max) {
        this.max = max;
    }

    boolean tryAcquire() {
        for (;;) {
            int n = open.get();
            if (n >= max) {
                return false;
            }
            if (open.compareAndSet(n, n + 1)) {
                return true;
            }
        }
    }

    void enqueue(PendingAcquire waiter) {
        waiters.add(waiter);
        // A permit may have been freed between the failed tryAcquire and the enqueue.
        if (tryAcquire()) {
            handOver();
        }
    }

    boolean remove(PendingAcquire waiter) {
        return waiters.remove(waiter);
    }

    boolean hasWaiters() {
        return !waiters.isEmpty();
    }

    /** Called when a connection closes: its permit goes to a waiter or back to the pool. */
    void release() {
        open.decrementAndGet();
        if (!waiters.isEmpty() && tryAcquire()) {
            handOver();
        }
    }

    /** The caller holds one permit; give it to the oldest waiter or free it. */
    private void handOver() {
        PendingAcquire w = waiters.poll();
        if (w == null) {
            open.decrementAndGet();
            return;
        }
        w.grant();
    }

    int open() {
        return open.get();
    }
}
