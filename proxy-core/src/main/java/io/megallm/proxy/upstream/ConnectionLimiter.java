package io.megallm.proxy.upstream;

import java.util.Iterator;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The global cap on open upstream connections ({@code HTTP_POOL_MAXSIZE}) shared by the pools
 * of all event loops, and the bounded queue of requests waiting for one. A freed permit goes
 * to the oldest live waiter, on the waiter's loop. Lock-free: the queue is a
 * {@link ConcurrentLinkedQueue} and a waiter is claimed by a CAS on its own state, so a
 * cancelled or timed-out waiter that is still linked is skipped, never served.
 */
final class ConnectionLimiter {

    /** How far {@link #claimWaiterOf} looks for a waiter on the releasing loop before giving up. */
    private static final int LOCAL_SCAN = 64;

    private final int max;
    private final int maxWaiters;
    private final AtomicInteger open = new AtomicInteger();
    /** Live waiters (not cancelled, timed out or served); the queue may still link dead ones. */
    private final AtomicInteger waiting = new AtomicInteger();
    private final ConcurrentLinkedQueue<PendingAcquire> waiters = new ConcurrentLinkedQueue<>();
    /** Written once per event loop, read when a waiter looks for idle connections to reclaim. */
    private final CopyOnWriteArrayList<UpstreamPool> pools = new CopyOnWriteArrayList<>();

    ConnectionLimiter(int max, int maxWaiters) {
        this.max = max;
        this.maxWaiters = maxWaiters;
    }

    void register(UpstreamPool pool) {
        pools.add(pool);
    }

    /** A permit now, or null when every one is taken. */
    Permit tryAcquire() {
        return take() ? new Permit(this) : null;
    }

    private boolean take() {
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

    /** Queues a waiter; false when the queue is full (the caller answers at once). */
    boolean enqueue(PendingAcquire waiter) {
        if (waiting.incrementAndGet() > maxWaiters) {
            waiting.decrementAndGet();
            return false;
        }
        waiters.add(waiter);
        // A permit may have been freed between the failed tryAcquire and the add.
        dispatch();
        if (waiter.isWaiting()) {
            reclaimIdle();
        }
        return true;
    }

    /** Called by a waiter that left the queue by its own CAS (cancelled or timed out). */
    void left(PendingAcquire waiter) {
        waiting.decrementAndGet();
        waiters.remove(waiter);
    }

    boolean hasWaiters() {
        return waiting.get() > 0;
    }

    /**
     * A live waiter of {@code pool} among the oldest few, claimed for a connection that pool is
     * releasing; null when there is none close to the head (older waiters elsewhere come first).
     */
    PendingAcquire claimWaiterOf(UpstreamPool pool) {
        Iterator<PendingAcquire> it = waiters.iterator();
        for (int i = 0; i < LOCAL_SCAN && it.hasNext(); i++) {
            PendingAcquire w = it.next();
            if (w.pool() == pool && w.claim()) {
                waiting.decrementAndGet();
                it.remove();
                return w;
            }
        }
        return null;
    }

    /** Called once per permit, by {@link Permit#release()}: the slot goes to a waiter or back. */
    void release() {
        open.decrementAndGet();
        dispatch();
    }

    /** Gives free permits to the oldest live waiters; loops so that no waiter is stranded by a race. */
    private void dispatch() {
        while (!waiters.isEmpty() && take()) {
            if (!grantOldest()) {
                // Only dead waiters were linked (now unlinked): the slot is free again.
                open.decrementAndGet();
            }
        }
    }

    private boolean grantOldest() {
        PendingAcquire w;
        while ((w = waiters.poll()) != null) {
            if (w.claim()) {
                waiting.decrementAndGet();
                w.grant(new Permit(this));
                return true;
            }
        }
        return false;
    }

    /**
     * Idle connections are per loop, permits global: a waiter that found none free asks the
     * loop holding the most idle connections to close one, whose permit then comes to the
     * queue. Each pool does that on its own thread, so its idle deque stays confined to it.
     */
    private void reclaimIdle() {
        UpstreamPool donor = null;
        int most = 0;
        for (UpstreamPool p : pools) {
            int n = p.idleCountEstimate();
            if (n > most) {
                most = n;
                donor = p;
            }
        }
        if (donor != null) {
            donor.closeOneIdleSoon();
        }
    }

    int open() {
        return open.get();
    }

    int waiting() {
        return waiting.get();
    }
}
