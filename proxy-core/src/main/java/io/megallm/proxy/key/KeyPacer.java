package io.megallm.proxy.key;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
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
 * so the requests it took in between, over the time between them, is the rate it sustains. What
 * it took is counted as what was sent with the key in that time less the 429s that come back for
 * it, including the ones that arrive during the rest that followed (requests in flight when the
 * 429 came): counting acceptances as they came back instead measured too little, because a
 * slow 200 arrives after a quick 429 for a request sent later. A rest longer than 1 s counts as
 * 1 s (a bucket holds little more than a second's worth; what overflowed was not capacity).
 * Fewer than {@link #MIN_SAMPLE} taken (a burst on the whole account) teach nothing. A key is
 * first paced when two 429s come within {@link #WINDOW}; once paced, a longer gap only ever
 * raises the rate (the key may have had less demand than it could take).
 *
 * <p>How it paces: slots at the learned rate plus 5 %, growing by 5 % of it per second since the
 * last 429, so that a rate learned too low is outgrown within seconds and the next 429 corrects
 * it; the key then meets about one 429 per five seconds instead of one per few successes. The
 * slots are a GCRA (one theoretical arrival time, one CAS): lock-free on the request path. A key
 * that never met two close 429s is never paced, and {@link #EXPIRY} without a 429 ends it.
 *
 * <p>The slots a rest took away are banked: after a rest, the key may send at once what its
 * pace would have let through in the counted part of the rest ({@link #BANK_SHARE} of it, less
 * the GCRA's own tolerance). Why: the rate is learned over a span that counts the rest, so it is
 * what the key took per second of rest and work together; pacing only the working time at that
 * rate sent still less before the next 429, and a key whose 429s come now and then whatever its
 * rate (an upstream that is briefly busy, not a bucket) was paced down 429 by 429 to a fraction
 * of what it accepts: the chaos run saw healthy keys held to 6-35 requests a second and
 * well-behaved clients refused. A bucket refilled during the rest holds what the bank spends,
 * so the rate learned from a real limit is the same with or without it.
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
    /**
     * The share of the rest's slots banked: under 1 so that the bank, spent at once when the rest
     * ends, stays inside a bucket that refilled at the learned rate during the rest.
     */
    static final double BANK_SHARE = 0.9;
    /**
     * The most one sample may lower a learned rate. Why: a 429 that comes right after a rest
     * (the key's first requests back, its bank spent in a few milliseconds) makes a sample of
     * little more than the bank over one second; from a bucket that is its refill, but from an
     * upstream that 429s now and then it is noise, and the 10-minute chaos run saw such samples
     * cut healthy keys' paces by 60-70 % at a stroke, faster than growth gave it back. A real
     * limit well below the pace makes its 429s come quickly, so a few samples still reach it.
     */
    static final double MAX_DROP = 0.3;

    /** What the last 429 left: when, how many had been sent with the key then, when its rest ended. */
    private record Mark(long atNanos, long sent, long restEndNanos) { }

    /**
     * A learned rate: {@code taken} requests over {@code spanNanos} up to the 429 at
     * {@code sinceNanos} (the pace grows from there). While {@code fresh} (learned at the latest
     * 429), {@code taken} falls as late 429s come in.
     */
    private record Pace(double perSecond, long sinceNanos, long taken, long spanNanos, Pace before, boolean fresh) {

        static Pace learned(long taken, long spanNanos, long sinceNanos, Pace before) {
            // Only one step of history: what to fall back to if this sample turns out too small.
            Pace prior = before == null ? null : new Pace(before.perSecond, before.sinceNanos, before.taken,
                    before.spanNanos, null, false);
            return new Pace(rate(taken, spanNanos, prior), sinceNanos, taken, spanNanos, prior, true);
        }

        /** {@code taken} over the span, but never below {@link #MAX_DROP} under the rate before. */
        private static double rate(long taken, long spanNanos, Pace before) {
            double r = taken * (double) SECOND / spanNanos;
            return before == null ? r : Math.max(r, before.perSecond * (1 - MAX_DROP));
        }

        /** The same rate, its growth starting over at {@code nanos}; no late 429 changes it. */
        Pace restartedAt(long nanos) {
            return new Pace(perSecond, nanos, taken, spanNanos, before, false);
        }

        /** One fewer taken; below the sample minimum the sample is void and the rate before it stands. */
        Pace lessOne() {
            if (taken - 1 < MIN_SAMPLE) {
                return before == null ? null : before.restartedAt(sinceNanos);
            }
            return new Pace(rate(taken - 1, spanNanos, before), sinceNanos, taken - 1, spanNanos, before, true);
        }
    }

    /** How long a probe may stay unanswered before another request may probe (a request can vanish). */
    static final long PROBE_LEASE = TimeUnit.SECONDS.toNanos(5);

    private final AtomicLong sent = new AtomicLong();
    /** When the probe of a key back from a second rest in a row went out; 0: none out. */
    private final AtomicLong probeAt = new AtomicLong();
    /** The GCRA's theoretical arrival time: the next request is on time at or after it. */
    private final AtomicLong nextSlot = new AtomicLong();
    /** Slots banked by the current rest, spent once the slots of the pace run out. */
    private final AtomicInteger banked = new AtomicInteger();
    private volatile Mark last;
    private volatile Pace pace;

    /** A request is going out with this key. */
    void sent() {
        sent.incrementAndGet();
    }

    /**
     * The key's rest after a 429 began at {@code nowNanos} and ends at {@code restEndNanos}. Called
     * once per rest (by the transition that started it), so calls never race one another.
     *
     * @return the rate now learned, per second, or 0 when the key is not paced
     */
    double limited(long nowNanos, long restEndNanos) {
        double perSecond = learn(nowNanos, restEndNanos);
        banked.set(perSecond > 0 ? bankFor(perSecond, restEndNanos - nowNanos) : 0);
        return perSecond;
    }

    /**
     * The slots a rest of {@code restNanos} takes from a key paced at {@code perSecond} (plus its
     * headroom), as far as the rest is counted in what the key learns (1 s at most), times
     * {@link #BANK_SHARE}, less what the GCRA's tolerance lets through after any pause anyway.
     */
    static int bankFor(double perSecond, long restNanos) {
        long counted = Math.min(Math.max(restNanos, 0L), SECOND);
        double slots = BANK_SHARE * perSecond * (1 + HEADROOM) * counted / SECOND - (TOLERANCE_SLOTS + 1);
        return slots <= 0 ? 0 : (int) Math.min(slots, 1_000_000);
    }

    private double learn(long nowNanos, long restEndNanos) {
        Mark prev = last;
        long count = sent.get();
        last = new Mark(nowNanos, count, restEndNanos);
        Pace current = pace;
        if (current != null && nowNanos - current.sinceNanos() > EXPIRY) {
            current = null;
        }
        if (prev == null || (current == null && nowNanos - prev.atNanos() > WINDOW)) {
            pace = null;
            return 0;
        }
        // What went out since the last 429, less this 429's own request.
        long taken = count - prev.sent() - 1;
        long from = Math.max(prev.atNanos(), prev.restEndNanos() - SECOND);
        long span = Math.max(nowNanos - from, 1);
        if (taken < MIN_SAMPLE) {
            if (current == null) {
                return 0;
            }
            // The growth restarts: the key was limited at about this pace.
            pace = current.restartedAt(nowNanos);
            nextSlot.set(nowNanos);
            return current.perSecond();
        }
        double perSecond = taken * (double) SECOND / span;
        if (current != null && nowNanos - prev.atNanos() > WINDOW && perSecond < current.perSecond()) {
            // A long gap may hold idle time: it can tell that the key takes more, not less.
            pace = current.restartedAt(nowNanos);
        } else {
            pace = Pace.learned(taken, span, nowNanos, current);
        }
        nextSlot.set(nowNanos);
        Pace p = pace;
        return p == null ? 0 : p.perSecond();
    }

    /**
     * A 429 for a request sent before the current rest began: the upstream did not take it, so the
     * rate just learned was one too high.
     */
    void lateLimited() {
        Pace p = pace;
        Mark m = last;
        if (p != null && m != null && p.fresh() && p.sinceNanos() == m.atNanos()) {
            pace = p.lessOne();
        }
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

    /** Nanoseconds until the key's next slot, 0 when one is free now or the key is unpaced. */
    long nanosUntilSlot(long nowNanos) {
        long interval = intervalNanos(nowNanos);
        if (interval == 0 || banked.get() > 0) {
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
                return takeBanked();
            }
            long start = tat - nowNanos > 0 ? tat : nowNanos;
            if (nextSlot.compareAndSet(tat, start + interval)) {
                return true;
            }
        }
    }

    private boolean takeBanked() {
        for (;;) {
            int b = banked.get();
            if (b <= 0) {
                return false;
            }
            if (banked.compareAndSet(b, b - 1)) {
                return true;
            }
        }
    }

    /** Slots banked by the last rest and not yet spent. */
    int banked() {
        return banked.get();
    }

    /**
     * A key back from its second rest in a row without an accepted request in between is probed:
     * one request at a time until an answer comes (an account-wide burst would otherwise get
     * every request that arrives while the first one is on its way). True if this caller's
     * request is the probe.
     */
    boolean tryProbe(long nowNanos) {
        long at = probeAt.get();
        if (at != 0 && nowNanos - at < PROBE_LEASE) {
            return false;
        }
        return probeAt.compareAndSet(at, nowNanos == 0 ? 1 : nowNanos);
    }

    /** Back from a second rest in a row with nothing accepted in between: one request at a time. */
    static boolean onProbation(KeyState s) {
        return s.kind() == KeyState.Kind.COOLING_DOWN && s.strikes() >= 2;
    }

    /**
     * Nanoseconds until a request may take this key in state {@code s}: 0 now; until its rest ends,
     * its next slot, or its probe's answer (at the latest, the probe's lease); -1 for a failed key.
     */
    long nanosUntilTakeable(KeyState s, long nowNanos) {
        if (s.kind() == KeyState.Kind.FAILED) {
            return -1;
        }
        if (!s.usableAt(nowNanos)) {
            return s.untilNanos() - nowNanos;
        }
        long wait = nanosUntilSlot(nowNanos);
        if (onProbation(s)) {
            long at = probeAt.get();
            if (at != 0 && nowNanos - at < PROBE_LEASE) {
                wait = Math.max(wait, at + PROBE_LEASE - nowNanos);
            }
        }
        return wait;
    }

    /** An answer came for a request sent with this key: the probe, if one was out, is over (true). */
    boolean answered() {
        if (probeAt.get() != 0) {
            probeAt.set(0);
            return true;
        }
        return false;
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
        banked.set(0);
    }
}
