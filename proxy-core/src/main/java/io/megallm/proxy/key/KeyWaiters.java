package io.megallm.proxy.key;

import io.netty.channel.EventLoop;
import io.netty.util.concurrent.ScheduledFuture;

import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Requests waiting for a key when none is usable (contract §7, {@code KEY_WAIT}). No thread is
 * parked: a waiter is a queue entry and a callback that runs on the waiter's own event loop.
 * Waiters are woken in arrival order when a key becomes usable: on a state change to
 * available, on a reload, or by one timer at the earliest end of a rest. A client that leaves
 * takes its entry out at once. The count is bounded: when full, the caller answers 503 at once.
 */
public final class KeyWaiters {

    /** What a waiter is told, always on its own event loop, exactly once. */
    public interface Callback {
        /** A key may be usable now: select again (and wait again if another request was quicker). */
        void keyMayBeUsable();

        /** The wait reached its deadline with no key. */
        void waitOver();
    }

    private static final int WAITING = 0;
    private static final int DONE = 1;

    private final KeyPool pool;
    private final int maxWaiters;
    private final ConcurrentLinkedQueue<Waiter> queue = new ConcurrentLinkedQueue<>();
    private final AtomicInteger count = new AtomicInteger();
    /** The nanoTime the pending wake-up timer fires at; Long.MAX_VALUE when none is pending. */
    private final AtomicLong wakeAt = new AtomicLong(Long.MAX_VALUE);

    public KeyWaiters(KeyPool pool, int maxWaiters) {
        this.pool = pool;
        this.maxWaiters = maxWaiters;
        pool.lifecycle().addListener((key, from, to) -> {
            if (to.kind() == KeyState.Kind.AVAILABLE && from.kind() != KeyState.Kind.AVAILABLE) {
                wake();
            }
        });
        pool.onReload(this::wake);
    }

    /** One request's place in the wait. */
    public final class Waiter {
        private final EventLoop loop;
        private final Callback callback;
        private final AtomicInteger state = new AtomicInteger(WAITING);
        private ScheduledFuture<?> deadline;

        private Waiter(EventLoop loop, Callback callback) {
            this.loop = loop;
            this.callback = callback;
        }

        /** The client left: out of the queue now, and no callback will come. */
        public void cancel() {
            if (state.compareAndSet(WAITING, DONE)) {
                leave(this);
            }
        }

        private void timedOut() {
            if (state.compareAndSet(WAITING, DONE)) {
                leave(this);
                callback.waitOver();
            }
        }

        private void woken() {
            if (state.compareAndSet(WAITING, DONE)) {
                count.decrementAndGet();
                loop.execute(() -> {
                    cancelDeadline();
                    callback.keyMayBeUsable();
                });
            }
        }

        private void cancelDeadline() {
            if (deadline != null) {
                deadline.cancel(false);
                deadline = null;
            }
        }
    }

    /**
     * Enters the wait on {@code loop} (the caller's own) for up to {@code maxWaitNanos}; null when
     * the wait is full. Must be called on {@code loop}.
     */
    public Waiter await(EventLoop loop, long maxWaitNanos, Callback callback) {
        for (;;) {
            int n = count.get();
            if (n >= maxWaiters) {
                return null;
            }
            if (count.compareAndSet(n, n + 1)) {
                break;
            }
        }
        Waiter w = new Waiter(loop, callback);
        w.deadline = loop.schedule(w::timedOut, maxWaitNanos, TimeUnit.NANOSECONDS);
        queue.add(w);
        long untilUsable = pool.nanosUntilNextUsable();
        if (untilUsable == 0) {
            // A key came back between the caller's look and its entry here: no state change will tell.
            wake();
        } else if (untilUsable > 0) {
            scheduleWake(loop, untilUsable);
        }
        return w;
    }

    /** Waiters now. */
    public int size() {
        return count.get();
    }

    /** Wakes every waiter in arrival order. Any thread. */
    public void wake() {
        Waiter w;
        while ((w = queue.poll()) != null) {
            w.woken();
        }
    }

    private void leave(Waiter w) {
        count.decrementAndGet();
        queue.remove(w);
        w.cancelDeadline();
    }

    /** One timer for the whole pool, at the earliest rest end any waiter needs. */
    private void scheduleWake(EventLoop loop, long delayNanos) {
        long at = pool.now() + delayNanos;
        for (;;) {
            long pending = wakeAt.get();
            if (pending != Long.MAX_VALUE && pending - at <= 0) {
                return;
            }
            if (wakeAt.compareAndSet(pending, at)) {
                break;
            }
        }
        loop.schedule(() -> {
            wakeAt.compareAndSet(at, Long.MAX_VALUE);
            wake();
        }, delayNanos, TimeUnit.NANOSECONDS);
    }
}
