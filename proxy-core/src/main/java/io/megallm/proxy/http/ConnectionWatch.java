package io.megallm.proxy.http;

import io.megallm.proxy.clock.EventClock;
import io.netty.util.concurrent.EventExecutor;
import io.netty.util.concurrent.ScheduledFuture;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.concurrent.TimeUnit;

/**
 * The client-connection deadlines of one event loop: one list per kind of timeout, each sorted by
 * deadline, and one scheduled wake-up for the earliest of all. A Netty timer or an IdleStateHandler
 * per connection would put a task object and a priority-queue insert and removal on every request;
 * here arming is nearly always an append (a kind's deadlines are armed with the same delay, so they
 * come in order) and disarming an unlink. Kinds get lists of their own because their delays
 * differ: in one list a 60 s deadline would walk back past every 75 s one. Only the event loop's
 * thread uses it.
 */
final class ConnectionWatch implements Runnable {

    private static final Logger log = LoggerFactory.getLogger(ConnectionWatch.class);

    /** The whole request head (or, on a new connection, its first byte) must arrive by then. */
    static final int HEAD = 0;
    /** Silence allowed between two reads of a request body. */
    static final int BODY = 1;
    /** An idle keep-alive connection. */
    static final int IDLE = 2;
    /** A client that accepts no byte of an answer waiting for it. */
    static final int SEND = 3;
    private static final int KINDS = 4;

    /** One connection's timer of one role; armed again and again, never allocated per request. */
    static final class Entry {
        private final Runnable task;
        private long deadline;
        private Entry prev;
        private Entry next;
        private int kind = -1;

        Entry(Runnable task) {
            this.task = task;
        }

        boolean armed() {
            return kind >= 0;
        }
    }

    private final EventExecutor loop;
    private final Entry[] heads = new Entry[KINDS];
    private final Entry[] tails = new Entry[KINDS];
    private ScheduledFuture<?> wakeUp;
    private long wakeUpAt;

    ConnectionWatch(EventExecutor loop) {
        this.loop = loop;
    }

    long now() {
        return EventClock.nanoTime(loop.ticker());
    }

    /** Runs {@code e}'s task once {@code delayNanos} have passed, unless disarmed before; 0: never. */
    void arm(Entry e, int kind, long delayNanos) {
        disarm(e);
        if (delayNanos <= 0) {
            return;
        }
        long deadline = now() + delayNanos;
        e.deadline = deadline;
        e.kind = kind;
        Entry before = tails[kind];
        while (before != null && before.deadline - deadline > 0) {
            before = before.prev;
        }
        e.prev = before;
        e.next = before == null ? heads[kind] : before.next;
        if (e.next != null) {
            e.next.prev = e;
        } else {
            tails[kind] = e;
        }
        if (before != null) {
            before.next = e;
        } else {
            heads[kind] = e;
            wakeUpBy(deadline);
        }
    }

    /** Forgets {@code e}; a wake-up that comes early finds nothing due and is set for the next. */
    void disarm(Entry e) {
        int kind = e.kind;
        if (kind < 0) {
            return;
        }
        e.kind = -1;
        if (e.prev != null) {
            e.prev.next = e.next;
        } else {
            heads[kind] = e.next;
        }
        if (e.next != null) {
            e.next.prev = e.prev;
        } else {
            tails[kind] = e.prev;
        }
        e.prev = null;
        e.next = null;
    }

    /** The wake-up: runs every task whose deadline has passed, then waits for the next one. */
    @Override
    public void run() {
        wakeUp = null;
        long now = now();
        Entry e;
        while ((e = earliest()) != null && e.deadline - now <= 0) {
            disarm(e);
            try {
                e.task.run();
            } catch (RuntimeException ex) {
                // One connection's failure must not stop the timeouts of all the others.
                log.warn("a client connection timeout failed", ex);
            }
        }
        if (e != null) {
            wakeUpBy(e.deadline);
        }
    }

    private Entry earliest() {
        Entry earliest = null;
        for (int kind = 0; kind < KINDS; kind++) {
            Entry e = heads[kind];
            if (e != null && (earliest == null || e.deadline - earliest.deadline < 0)) {
                earliest = e;
            }
        }
        return earliest;
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
