package io.megallm.proxy.key;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Which key a request gets. Round-robin over the keys usable now: the cursor moves past the key
 * handed out with a CAS, so an unavailable key does not give its turn to its neighbour twice
 * and concurrent callers get distinct keys, one request per key per round. A request with an
 * affinity value goes by rendezvous hashing instead, and a failed key whose trial is due is
 * claimed here. A key the upstream keeps rate-limiting is passed over while its pace has no free
 * slot ({@link KeyPacer}); the others take its turn. No lock.
 */
public final class KeySelector {

    private final KeyPool pool;
    private final AtomicLong cursor = new AtomicLong();
    /**
     * No trial is due before this nanoTime, so most requests skip the scan for one. Lowered by
     * every change that makes a trial due sooner, raised only by a scan that saw every key. Each
     * change installs a new {@link Gate}, so that a scan that ran meanwhile (and may have read the
     * changed key before it changed) cannot put its own answer over it: its CAS is on the old one.
     */
    private final AtomicReference<Gate> noTrialBefore = new AtomicReference<>(new Gate(Long.MIN_VALUE));

    /** A gate time; compared by identity. */
    private record Gate(long at) {
    }

    public KeySelector(KeyPool pool) {
        this.pool = pool;
        pool.lifecycle().addListener((key, from, to) -> {
            if (to.rechecks()) {
                // A new failure's first trial, a failed trial's next one, or a claim's lapse.
                lower(to.untilNanos());
            }
        });
        pool.onReload(() -> noTrialBefore.set(new Gate(Long.MIN_VALUE)));
    }

    private void lower(long at) {
        // MIN_VALUE means "scan every time" and stays so; otherwise the earlier time wins.
        // Always a new object, even for the same time: a scan under way must not close the gate after it.
        noTrialBefore.updateAndGet(current -> new Gate(
                current.at() != Long.MIN_VALUE && at - current.at() < 0 ? at : current.at()));
    }

    /**
     * The next usable key that is not among the first {@code triedCount} entries of
     * {@code tried}, or null when there is none.
     */
    public ApiKey next(ApiKey[] tried, int triedCount) {
        return roundRobin(tried, 0, triedCount, true);
    }

    private ApiKey roundRobin(ApiKey[] tried, int from, int to, boolean paced) {
        for (;;) {
            ApiKey[] keys = pool.snapshot();
            int n = keys.length;
            if (n == 0) {
                return null;
            }
            long now = pool.now();
            long start = cursor.get();
            int base = (int) Math.floorMod(start, (long) n);
            ApiKey found = null;
            int offset = 0;
            for (; offset < n; offset++) {
                ApiKey k = keys[(base + offset) % n];
                if (usable(k, now, paced) && !contains(tried, from, to, k)) {
                    found = k;
                    break;
                }
            }
            if (found == null) {
                return null;
            }
            // The slot is taken only by the caller that won the turn; one that lost it to a racer scans again.
            if (cursor.compareAndSet(start, start + offset + 1) && (!paced || take(found, now))) {
                return found;
            }
        }
    }

    /**
     * Usable now and, when {@code paced}, with a free slot of its pace and no probe out (see
     * {@link KeyPacer}). Unpaced, for a request that cannot wait, neither holds it back.
     */
    private static boolean usable(ApiKey k, long now, boolean paced) {
        KeyState s = k.state();
        if (!s.usableAt(now)) {
            return false;
        }
        if (!paced) {
            return true;
        }
        return k.pacer().nanosUntilTakeable(s, now) == 0;
    }

    /** Takes the key's probe (if on probation) and a slot of its pace; false when a racer was quicker. */
    private static boolean take(ApiKey k, long now) {
        boolean probe = KeyPacer.onProbation(k.state());
        if (probe && !k.pacer().tryProbe(now)) {
            return false;
        }
        if (k.pacer().tryTake(now)) {
            return true;
        }
        if (probe) {
            // No slot after all: the probe goes back for the request that gets one.
            k.pacer().answered();
        }
        return false;
    }

    /**
     * Like {@link #next(ApiKey[], int)}, but only {@code tried[from..to)} are avoided (a request
     * that waited for a key may go back to the keys it tried before), and a request with an
     * affinity value ({@code affinity != 0}, the hash of its {@code prompt_cache_key} or
     * {@code user}) gets the usable key with the highest rendezvous weight for that value. While
     * that key stays usable every request with the value lands on it; when it goes, only its own
     * share of values moves, each to its second choice.
     */
    public ApiKey next(ApiKey[] tried, int from, int to, long affinity) {
        return next(tried, from, to, affinity, true);
    }

    /**
     * Like {@link #next(ApiKey[], int, int, long)}, but a key's pace is ignored when {@code paced}
     * is false: for a request that cannot wait for a slot (KEY_WAIT=0), a key that may answer 429
     * is still better than a 503 of our own.
     */
    public ApiKey next(ApiKey[] tried, int from, int to, long affinity, boolean paced) {
        if (affinity == 0) {
            return roundRobin(tried, from, to, paced);
        }
        for (;;) {
            ApiKey[] keys = pool.snapshot();
            long now = pool.now();
            ApiKey best = null;
            long bestWeight = 0;
            for (ApiKey k : keys) {
                if (!usable(k, now, paced) || contains(tried, from, to, k)) {
                    continue;
                }
                long w = weight(affinity, k);
                if (best == null || Long.compareUnsigned(w, bestWeight) > 0) {
                    best = k;
                    bestWeight = w;
                }
            }
            if (best == null || !paced || take(best, now)) {
                return best;
            }
            // A racer took the key's last slot: choose again among the others.
        }
    }

    /** {@link #next(ApiKey[], int, int, long)} avoiding every key tried so far. */
    public ApiKey next(ApiKey[] tried, int triedCount, long affinity) {
        return next(tried, 0, triedCount, affinity);
    }

    /**
     * Whether {@code key} is the first choice for {@code affinity} among all keys of the pool,
     * usable or not: a request placed by affinity on another key was moved off its warm cache.
     */
    public boolean firstChoice(long affinity, ApiKey key) {
        ApiKey best = null;
        long bestWeight = 0;
        for (ApiKey k : pool.snapshot()) {
            long w = weight(affinity, k);
            if (best == null || Long.compareUnsigned(w, bestWeight) > 0) {
                best = k;
                bestWeight = w;
            }
        }
        return best == key;
    }

    /** The rendezvous weight: a strong mix of value and key, so that every key wins its fair share. */
    static long weight(long affinity, ApiKey key) {
        long z = affinity ^ key.affinitySeed();
        // splitmix64's finaliser: every input bit flips about half the output bits.
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }

    /**
     * Claims the trial of a failed key that is due for one (KEY_RECHECK), not among {@code tried}:
     * the caller sends its request with that key first. Null when no trial is due. Many racing
     * callers get the key at most once between them: the claim is a CAS.
     */
    public ApiKey trial(ApiKey[] tried, int triedCount) {
        long now = pool.now();
        Gate gate = noTrialBefore.get();
        if (gate.at() != Long.MIN_VALUE && now - gate.at() < 0) {
            return null;
        }
        ApiKey[] keys = pool.snapshot();
        KeyLifecycle lifecycle = pool.lifecycle();
        boolean any = false;
        boolean blocked = false;
        long next = 0;
        for (ApiKey k : keys) {
            KeyState s = k.state();
            if (!s.rechecks()) {
                continue;
            }
            if (s.trialDueAt(now)) {
                if (!contains(tried, 0, triedCount, k) && lifecycle.claimTrial(k)) {
                    return k;
                }
                // Due but not this request's (it tried the key already, or a racer claimed it).
                blocked = true;
                continue;
            }
            if (!any || s.untilNanos() - next < 0) {
                next = s.untilNanos();
                any = true;
            }
        }
        // Nothing due: skip scans until the earliest trial, unless a change lowered the gate meanwhile.
        if (!blocked) {
            noTrialBefore.compareAndSet(gate, new Gate(any ? next : now + TimeUnit.DAYS.toNanos(1)));
        }
        return null;
    }

    private static boolean contains(ApiKey[] tried, int from, int to, ApiKey key) {
        for (int i = from; i < to; i++) {
            if (tried[i] == key) {
                return true;
            }
        }
        return false;
    }
}
