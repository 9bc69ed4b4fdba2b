package io.megallm.proxy.key;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.LongSupplier;

/**
 * "May we resend?" (contract §7): retries caused by transient failures may add at most
 * {@code RETRY_BUDGET} percent to the requests of the last 10 s, plus {@code RETRY_BUDGET_MIN}
 * per second, so a failing upstream never gets a multiple of the offered load.
 *
 * <p>The two parts are counted apart. The percent is of the window and may be spent at once: a
 * burst of failures after a busy spell gets what the spell earned. The minimum is per second and
 * does not accumulate: counted over the window, it let an idle proxy spend ten seconds' worth in
 * one, fifteen times the offered load of a quiet client against a failing upstream. A retry takes
 * from the percent first; the minimum is what is left when the percent is spent.
 *
 * <p>One instance for all event loops. The window is ten one-second slots per counter; each
 * slot is one {@code long} holding its second (high 32 bits) and its count (low 32 bits), so
 * moving a slot to a new second and counting in it is a single CAS. The minimum's count is one
 * more such {@code long}, for the current second only. No lock.
 */
public final class RetryBudget {

    static final int WINDOW_SECONDS = 10;

    private final long percent;
    private final long minPerSecond;
    private final LongSupplier nanoClock;
    private final AtomicLongArray requests = new AtomicLongArray(WINDOW_SECONDS);
    /** Retries taken from the percent. */
    private final AtomicLongArray retries = new AtomicLongArray(WINDOW_SECONDS);
    /** Retries taken from the minimum, this second (second and count, as a slot). */
    private final AtomicLong minimumUsed = new AtomicLong();
    private final LongAdder refused = new LongAdder();
    private final long origin;

    public RetryBudget(long percent, long minPerSecond, LongSupplier nanoClock) {
        if (percent < 0 || minPerSecond < 0) {
            throw new IllegalArgumentException("negative retry budget");
        }
        this.percent = percent;
        this.minPerSecond = minPerSecond;
        this.nanoClock = nanoClock;
        // Seconds are counted from here so that they fit the slot's 32 bits for 136 years.
        this.origin = nanoClock.getAsLong();
    }

    /** Counts one client request into the window. */
    public void onRequest() {
        add(requests, second(), 1);
    }

    /**
     * Takes one retry from the budget, or refuses (and counts the refusal) when the window has
     * used it up. Counted first and taken back when over, so racing loops cannot all slip through.
     */
    public boolean tryRetry() {
        long now = second();
        add(retries, now, 1);
        if (sum(retries, now) <= sum(requests, now) * percent / 100) {
            return true;
        }
        add(retries, now, -1);
        if (takeMinimum(now)) {
            return true;
        }
        refused.increment();
        return false;
    }

    /** One of this second's RETRY_BUDGET_MIN, if any is left. */
    private boolean takeMinimum(long second) {
        for (;;) {
            long v = minimumUsed.get();
            long used = v >>> 32 == second ? v & 0xffff_ffffL : 0;
            if (used >= minPerSecond) {
                return false;
            }
            if (minimumUsed.compareAndSet(v, (second << 32) | (used + 1))) {
                return true;
            }
        }
    }

    /** Retries refused since start. */
    public long refused() {
        return refused.sum();
    }

    private long second() {
        return TimeUnit.NANOSECONDS.toSeconds(nanoClock.getAsLong() - origin) & 0xffff_ffffL;
    }

    private static void add(AtomicLongArray slots, long second, int delta) {
        int i = (int) (second % WINDOW_SECONDS);
        for (;;) {
            long v = slots.get(i);
            long next;
            if (v >>> 32 == second) {
                next = v + delta;
            } else if (delta > 0) {
                // The slot still holds a second that left the window: start it over.
                next = (second << 32) | delta;
            } else {
                return;
            }
            if (slots.compareAndSet(i, v, next)) {
                return;
            }
        }
    }

    private static long sum(AtomicLongArray slots, long now) {
        long total = 0;
        for (int i = 0; i < WINDOW_SECONDS; i++) {
            long v = slots.get(i);
            long age = now - (v >>> 32);
            if (age >= 0 && age < WINDOW_SECONDS) {
                total += v & 0xffff_ffffL;
            }
        }
        return total;
    }
}
