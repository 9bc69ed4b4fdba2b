package io.megallm.proxy.relay;

import io.megallm.proxy.clock.EventClock;
import io.netty.util.concurrent.EventExecutor;
import io.netty.util.concurrent.ScheduledFuture;

import java.util.concurrent.TimeUnit;

/**
 * The silence timeouts of one event loop's relay calls: one list sorted by deadline and one
 * scheduled wake-up for the earliest. A Netty timer per attempt (a task object, a priority-queue
 * insert, and a removal when the answer came in time, as it nearly always does) cost about 2 % of
 * the proxy's CPU under load. Here an attempt's deadline is almost always the latest, so arming is
 * an append and disarming an unlink. Only the event loop's thread uses it.
 */
final class SilenceWatch implements Runnable {

    /** A watched task; one per relay call, armed again for each attempt. */
    static final class Entry {
        private final Runnable task;
        private long deadline;
        private Entry prev;
        private Entry next;
        private boolean armed;

        Entry(Runnable task) {
            this.task = task;
        }

        boolean armed() {
            return armed;
        }
    }

    private final EventExecutor loop;
    private Entry head;
    private Entry tail;
    private ScheduledFuture<?> wakeUp;
    private long wakeUpAt;

    SilenceWatch(EventExecutor loop) {
        this.loop = loop;
    }

    private long now() {
        return EventClock.nanoTime(loop.ticker());
    }

    /** Runs {@code e}'s task once {@code delayNanos} have passed, unless disarmed before. */
    void arm(Entry e, long delayNanos) {
        disarm(e);
        long deadline = now() + delayNanos;
        e.deadline = deadline;
        e.armed = true;
        Entry before = tail;
        while (before != null && before.deadline - deadline > 0) {
            before = before.prev;
        }
        e.prev = before;
        e.next = before == null ? head : before.next;
        if (e.next != null) {
            e.next.prev = e;
        } else {
            tail = e;
        }
        if (before != null) {
            before.next = e;
        } else {
            head = e;
            wakeUpBy(deadline);
        }
    }

    /**
     * Forgets {@code e}. The wake-up stays: when it comes early it finds nothing due and is set
     * again for the new earliest deadline.
     */
    void disarm(Entry e) {
        if (!e.armed) {
            return;
        }
        e.armed = false;
        if (e.prev != null) {
            e.prev.next = e.next;
        } else {
            head = e.next;
        }
        if (e.next != null) {
            e.next.prev = e.prev;
        } else {
            tail = e.prev;
        }
        e.prev = null;
        e.next = null;
    }

    /** The wake-up: runs every task whose deadline has passed, in deadline order. */
    @Override
    public void run() {
        wakeUp = null;
        long now = now();
        while (head != null && head.deadline - now <= 0) {
            Entry e = head;
            disarm(e);
            e.task.run();
        }
        if (head != null) {
            wakeUpBy(head.deadline);
        }
    }

    private void wakeUpBy(long deadline) {
        if (wakeUp != null) {
            if (wakeUpAt - deadline <= 0) {
                return;
            }
            wakeUp.cancel(false);
        }
        wakeUpAt = deadline;
        wakeUp = loop.schedule(this, Math.max(0, deadline - now()), TimeUnit.NANOSECONDS);
    }
}
