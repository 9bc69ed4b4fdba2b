package io.megallm.proxy.key;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Spaces the requests of a key that the upstream rate-limits again and again, at the rate the
 * key has shown it accepts, so that the pool stops paying a 429 for every few successes.
 *
 * <p>Why: a rest ends with the upstream's bucket full, and an unpaced key then takes every request
 * until it is empty and answers 429 to the ones in flight and to the next arrivals; under
 * overload the pool-efficiency run measured one wasted upstream call per success that way.
 *
 * <p>What it learns: between two consecutive 429s the upstream's bucket went from empty to empty,
 * so the requests it accepted in between, divided by the time between them, is the rate it
 * sustains (a long rest counts as 1 s at most: a bucket holds little more than a second's worth,
 * and what overflowed during a longer rest is not capacity the key had). Two 429s more than
 * {@link #WINDOW} apart are no sustained limit and end the pacing; fewer than {@link #MIN_SAMPLE}
 * acceptances between them (a burst on the whole account) teach nothing and keep the old rate.
 *
 * <p>How it paces: slots at the learned rate plus 5 %, growing by 5 % of it per second since the
 * last 429, so that a rate learned too low is outgrown within seconds and the next 429 corrects
 * it; the key then meets about one 429 per five seconds instead of one per success. The slots
 * are a GCRA (one theoretical arrival time, one CAS): lock-free on the request path.
 * A key that never met two close 429s is never paced.
 */
public final class KeyPacer {

    static final long WINDOW = TimeUnit.SECONDS.toNanos(10);
    static final int MIN_SAMPLE = 3;
    static final double HEADROOM = 0.05;
    static final double GROWTH_PER_SECOND = 0.05;
    /** Past this the pace is more than thrice the learned rate: no longer a limit worth keeping. */
    static final long EXPIRY = TimeUnit.SECONDS.toNanos(40);
    private static final long SECOND = TimeUnit.SECONDS.toNanos(1);
    /** Slots a key may run ahead after a pause: a little burst, well within any bucket that held the rate. */
    private static final int TOLERANCE_SLOTS = 2;

    /** What the last 429 left: when, how many acceptances had been counted then, when its rest ended. */
    private record Mark(long atNanos, long accepted, long restEndNanos) { }

    /** A learned rate and the 429 it was learned at (the pace grows from there). */
    private record Pace(double perSecond, long sinceNanos) { }

    private final AtomicLong accepted = new AtomicLong();
    /** The GCRA's theoretical arrival time: the next request is on time at or after it. */
    private final AtomicLong nextSlot = new AtomicLong();
    private volatile Mark last;
    private volatile Pace pace;

    /** The upstream accepted a request sent with this key. */
    void accepted() {
        accepted.incrementAndGet();
    }

    /**
     * The key's rest after a 429 began at {@code nowNanos} and ends at {@code restEndNanos}. Called
     * once per rest (by the transition that started it), so calls never race one another.
     *
     * @return the rate now learned, per second, or 0 when the key is not paced
     */
    double limited(long nowNanos, long restEndNanos) {
        Mark prev = last;
        long count = accepted.get();
        last = new Mark(nowNanos, count, restEndNanos);
        if (prev == null || nowNanos - prev.atNanos() > WINDOW) {
            pace = null;
            return 0;
        }
        long got = count - prev.accepted();
        Pace current = pace;
        if (got < MIN_SAMPLE) {
            if (current == null) {
                return 0;
            }
            // The growth restarts: the key was limited at about this pace.
            pace = new Pace(current.perSecond(), nowNanos);
            nextSlot.set(nowNanos);
            return current.perSecond();
        }
        long from = Math.max(prev.atNanos(), prev.restEndNanos() - SECOND);
        long span = Math.max(nowNanos - from, 1);
        double perSecond = got * (double) SECOND / span;
        pace = new Pace(perSecond, nowNanos);
        nextSlot.set(nowNanos);
        return perSecond;
    }

    /** The nanoseconds between slots at {@code nowNanos}; 0 when unpaced. */
    long intervalNanos(long nowNanos) {
        Pace p = pace;
        if (p == null) {
            return 0;
        }
        long since = nowNanos - p.sinceNanos();
        if (since > EXPIRY) {
            return 0;
        }
        double factor = 1 + HEADROOM + GROWTH_PER_SECOND * Math.max(0, since) / SECOND;
        return Math.max(1L, (long) (SECOND / (p.perSecond() * factor)));
    }

    /** Whether a request may go now (always, for an unpaced key); does not take the slot. */
    boolean hasSlot(long nowNanos) {
        return nanosUntilSlot(nowNanos) == 0;
    }

    /** Nanoseconds until the key's next slot, 0 when one is free now or the key is unpaced. */
    long nanosUntilSlot(long nowNanos) {
        long interval = intervalNanos(nowNanos);
        if (interval == 0) {
            return 0;
        }
        long wait = nextSlot.get() - TOLERANCE_SLOTS * interval - nowNanos;
        return Math.max(0L, wait);
    }

    /** Takes a slot if one is free now: exactly as many callers win as there are slots. */
    boolean tryTake(long nowNanos) {
        long interval = intervalNanos(nowNanos);
        if (interval == 0) {
            return true;
        }
        for (;;) {
            long tat = nextSlot.get();
            if (tat - TOLERANCE_SLOTS * interval - nowNanos > 0) {
                return false;
            }
            long start = tat - nowNanos > 0 ? tat : nowNanos;
            if (nextSlot.compareAndSet(tat, start + interval)) {
                return true;
            }
        }
    }

    /** The learned rate per second, or 0 when the key is not paced now. */
    public double perSecond(long nowNanos) {
        Pace p = pace;
        return p == null || nowNanos - p.sinceNanos() > EXPIRY ? 0 : p.perSecond();
    }

    /** Forgets what was learned (a reset by an operator, a key put back by hand). */
    void forget() {
        pace = null;
        last = null;
    }
}
