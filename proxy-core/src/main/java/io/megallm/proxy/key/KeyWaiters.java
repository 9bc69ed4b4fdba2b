package io.megallm.proxy.key;

import io.netty.channel.EventLoop;
import io.netty.util.concurrent.ScheduledFuture;

import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Requests waiting for a key when none is usable (contract §7, {@code KEY_WAIT}). No thread is
 * parked: a waiter is a queue entry and a callback that runs on the waiter's own event loop.
 * Waiters are woken in arrival order when a key becomes usable: on a state change to
 * available, on a reload, or by one timer at the earliest end of a rest or the next slot of a
 * paced key ({@link KeyPacer}). A client that leaves
 * takes its entry out at once. The count is bounded: when full, the caller answers 503 at once.
 *
 * <p>Arrival order holds both ways: a woken waiter that finds the key taken again goes back to
 * the front, not the end (it was the oldest), and a new request does not take a key ahead of
 * the queue ({@link #size()} above 0): the chaos run saw requests wait the whole KEY_WAIT while
 * newcomers took every slot that came free.
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
    private final ConcurrentLinkedDeque<Waiter> queue = new ConcurrentLinkedDeque<>();
    private final AtomicInteger count = new AtomicInteger();
    /** The nanoTime the pending wake-up timer fires at; Long.MAX_VALUE when none is pending. */
    private final AtomicLong wakeAt = new AtomicLong(Long.MAX_VALUE);

    public KeyWaiters(KeyPool pool, int maxWaiters) {
        this.pool = pool;
        this.maxWaiters = maxWaiters;
        pool.lifecycle().addListener((key, from, to) -> {
            if (to.kind() == KeyState.Kind.AVAILABLE && from.kind() != KeyState.Kind.AVAILABLE) {
                wake(1);
            }
        });
        pool.onReload(this::wakeAll);
        pool.lifecycle().addProbeListener(key -> served());
    }

    /** One request's place in the wait. */
    public final class Waiter {
        private final EventLoop loop;
        private final Callback callback;
        private final AtomicInteger state = new AtomicInteger(WAITING);
        /**
         * Back in front after declining the keys usable now (it tried them), this many: a turn
         * passed along the queue ({@link #wakeBehind}) goes past it while no more keys are usable,
         * since it would only decline it again; 0 when it declined none.
         */
        private final int declined;
        private ScheduledFuture<?> deadline;

        private Waiter(EventLoop loop, Callback callback, int declined) {
            this.loop = loop;
            this.callback = callback;
            this.declined = declined;
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

        private boolean woken() {
            if (state.compareAndSet(WAITING, DONE)) {
                count.decrementAndGet();
                loop.execute(() -> {
                    cancelDeadline();
                    callback.keyMayBeUsable();
                });
                return true;
            }
            return false;
        }

        private void cancelDeadline() {
            if (deadline != null) {
                deadline.cancel(false);
                deadline = null;
            }
        }
    }

    /**
     * Enters the wait on {@code loop} (the caller's own) for up to {@code maxWaitNanos}, at the
     * end of the queue; null when the wait is full. Must be called on {@code loop}.
     */
    public Waiter await(EventLoop loop, long maxWaitNanos, Callback callback) {
        return await(loop, maxWaitNanos, callback, false);
    }

    /**
     * Like {@link #await(EventLoop, long, Callback)}; {@code keepPlace}: the caller was woken from
     * the front of the queue and found no key, so it goes back to the front.
     */
    public Waiter await(EventLoop loop, long maxWaitNanos, Callback callback, boolean keepPlace) {
        return await(loop, maxWaitNanos, callback, keepPlace, 0);
    }

    /**
     * Like {@link #await(EventLoop, long, Callback, boolean)} for a caller that may not take
     * {@code usableAtLook} of the keys usable now: it has tried them (contract §7: it goes back to
     * a tried key only after waiting for it). Those do not end its wait at once; any other usable
     * key ({@link KeyPool#usableNow()} above that count) does, as one that came back between the
     * caller's look and its entry here. (Woken at once by the key it had just tried, a request went back to it, round after
     * round, while the key it waited for came back a second later.)
     */
    public Waiter await(EventLoop loop, long maxWaitNanos, Callback callback, boolean keepPlace, int usableAtLook) {
        for (;;) {
            int n = count.get();
            if (n >= maxWaiters) {
                return null;
            }
            if (count.compareAndSet(n, n + 1)) {
                break;
            }
        }
        Waiter w = new Waiter(loop, callback, keepPlace ? usableAtLook : 0);
        w.deadline = loop.schedule(w::timedOut, maxWaitNanos, TimeUnit.NANOSECONDS);
        if (keepPlace) {
            queue.addFirst(w);
        } else {
            queue.addLast(w);
        }
        long untilUsable = pool.nanosUntilNextUsable();
        if (untilUsable == 0 && pool.usableNow() > usableAtLook) {
            // A key came back between the caller's look and its entry here: no state change will tell.
            wake(1);
        } else if (untilUsable == 0) {
            // Only the keys the caller has seen, and may not take, are usable: wake at the next return.
            long next = pool.nanosUntilNextReturn();
            if (next > 0) {
                scheduleWake(loop, next);
            }
        } else if (untilUsable > 0) {
            scheduleWake(loop, untilUsable);
        }
        return w;
    }

    /** Waiters now. */
    public int size() {
        return count.get();
    }

    /**
     * Wakes up to {@code n} waiters, oldest first. Any thread. One per key that came back, not
     * all of them: every woken request picks the same returning key, and a key just back from a
     * 429 rest that gets the whole queue at once answers 429 again to most of it (the pool-
     * efficiency run measured 3.7 upstream calls per offered request that way). Each success then
     * wakes the next ({@link #served()}), so the queue drains as fast as the keys take it.
     */
    public void wake(int n) {
        Waiter w;
        for (int i = 0; i < n && (w = queue.pollFirst()) != null; ) {
            if (w.woken()) {
                i++;
            }
        }
    }

    /**
     * Wakes the first waiter behind {@code w}: {@code w} was woken, found only keys it may not take
     * (it tried them) and is back at the front, so the turn it took goes to the next. Backwards
     * only: two such waiters handing it to the front would wake each other for ever. (A waiter
     * that avoided the free key held every newcomer behind it until its own key came back.) Waiters
     * that declined the turn themselves are passed over: two of them, each back in front of the
     * other, woke each other for ever, and the loops spun while the waiter behind them starved.
     * Not once more keys are usable than they declined: the turn may be for a key one of them
     * has not tried (passed over, it slept beside that key until its KEY_WAIT ran out).
     */
    public void wakeBehind(Waiter w) {
        boolean behind = false;
        int usable = -1;
        for (java.util.Iterator<Waiter> it = queue.iterator(); it.hasNext(); ) {
            Waiter x = it.next();
            if (!behind) {
                behind = x == w;
                continue;
            }
            if (x.declined > 0) {
                if (usable < 0) {
                    usable = pool.usableNow();
                }
                if (usable <= x.declined) {
                    continue;
                }
            }
            if (x.woken()) {
                it.remove();
                return;
            }
        }
    }

    /** Wakes everyone: the pool changed as a whole (a reload, a reset). */
    public void wakeAll() {
        wake(Integer.MAX_VALUE);
    }

    /** A key accepted a request: the oldest waiter, if any, may try now. Cheap when none waits. */
    public void served() {
        if (count.get() > 0) {
            wake(1);
        }
    }

    private void leave(Waiter w) {
        count.decrementAndGet();
        queue.removeFirstOccurrence(w);
        w.cancelDeadline();
    }

    /** One timer for the whole pool, at the earliest rest end or slot any waiter needs. */
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
            int usable = pool.usableNow();
            wake(Math.max(1, usable));
            long next = pool.nanosUntilNextReturn();
            if (next > 0 && count.get() > 0) {
                // Others rest on, or wait for a paced key's slot: the next one wakes the next waiters.
                scheduleWake(loop, next);
            }
        }, delayNanos, TimeUnit.NANOSECONDS);
    }
}
