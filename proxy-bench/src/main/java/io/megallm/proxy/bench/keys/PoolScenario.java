package io.megallm.proxy.bench.keys;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The pool the keys bench simulates: what each key is, and when the upstream misbehaves. Every
 * time is an offset in nanoseconds from the moment the load starts, so the mock and the client
 * agree on the timeline without talking to each other.
 *
 * <p>Eight healthy keys, two flapping keys (401 in two windows, fine otherwise) and two dead keys
 * (401 always), each with its own token bucket of {@code ratePerKey} requests a second. Half of
 * each group sends {@code Retry-After: 1} with its 429s and the other half none, because the proxy
 * treats the two differently (§7). In the middle, an IP-wide burst: every key 429 for a few seconds.
 */
public record PoolScenario(List<PoolKey> keys, double ratePerKey, double bucketSize, long durationNanos,
                           long burstStartNanos, long burstEndNanos, List<long[]> flapWindows) {

    public enum Role { HEALTHY, FLAPPING, DEAD }

    /** One pool key: its secret (a throw-away string), its role, and whether its 429s carry Retry-After. */
    public record PoolKey(String secret, Role role, boolean retryAfter) {
        /** The key's name in the report, with the tail the proxy's logs show, e.g. {@code healthy1 (…h001)}. */
        public String label() {
            return secret.substring("sk-pool-".length(), secret.lastIndexOf('-')) + " (…"
                    + secret.substring(secret.length() - 4) + ")";
        }
    }

    /**
     * The standard scenario scaled to {@code durationNanos}: the burst in the middle (3 s, or a tenth
     * of a shorter run), the flapping keys down for the first 15 % and again from 75 % to 85 %.
     */
    public static PoolScenario standard(long durationNanos) {
        List<PoolKey> keys = new ArrayList<>();
        add(keys, Role.HEALTHY, 8);
        add(keys, Role.FLAPPING, 2);
        add(keys, Role.DEAD, 2);
        long burst = Math.min(TimeUnit.SECONDS.toNanos(3), durationNanos / 10);
        long mid = durationNanos / 2;
        List<long[]> flaps = List.of(new long[] {0, (long) (durationNanos * 0.15)},
                new long[] {(long) (durationNanos * 0.75), (long) (durationNanos * 0.85)});
        return new PoolScenario(List.copyOf(keys), 10, 10, durationNanos, mid, mid + burst, flaps);
    }

    private static void add(List<PoolKey> keys, Role role, int n) {
        for (int i = 0; i < n; i++) {
            String name = role.name().toLowerCase(java.util.Locale.ROOT) + (i + 1);
            // The last four characters differ per key: the proxy's logs show keys masked to them.
            String tail = String.format(java.util.Locale.ROOT, "%c%03d", name.charAt(0), i + 1);
            keys.add(new PoolKey("sk-pool-" + name + "-" + "x".repeat(20) + tail, role, i % 2 == 0));
        }
    }

    public boolean inBurst(long t) {
        return t >= burstStartNanos && t < burstEndNanos;
    }

    /** True while flapping keys answer 401. */
    public boolean flapDown(long t) {
        for (long[] w : flapWindows) {
            if (t >= w[0] && t < w[1]) {
                return true;
            }
        }
        return false;
    }

    public long count(Role role) {
        return keys.stream().filter(k -> k.role() == role).count();
    }

    /** Requests a second the pool can serve at most: healthy and flapping keys' buckets. */
    public double maxCapacity() {
        return ratePerKey * (count(Role.HEALTHY) + count(Role.FLAPPING));
    }

    /** Requests a second the upstream would accept at {@code t}: 0 in the burst, no flapping keys while they are down. */
    public double capacityAt(long t) {
        if (inBurst(t)) {
            return 0;
        }
        return ratePerKey * (count(Role.HEALTHY) + (flapDown(t) ? 0 : count(Role.FLAPPING)));
    }

    /**
     * The capacity a proxy that follows contract §7 can reach at {@code t}: a flapping key that
     * answered 401 is failed, and comes back only at the first trial after it is up again; trials
     * at {@code KEY_RECHECK}, then 2×, 4× … later ({@code recheckNanos} 0: never). The upstream
     * accepts the key before that, but no proxy that keeps the contract's trial schedule can know.
     */
    public double reachableAt(long t, long recheckNanos) {
        if (inBurst(t) || flapDown(t)) {
            return capacityAt(t);
        }
        for (long[] w : flapWindows) {
            if (t >= w[1] && t < healedAt(w, recheckNanos) && nextWindowStart(w) > t) {
                return ratePerKey * count(Role.HEALTHY);
            }
        }
        return capacityAt(t);
    }

    /** When a key that failed at the window's start passes its first trial after the window's end. */
    long healedAt(long[] window, long recheckNanos) {
        if (recheckNanos <= 0) {
            return Long.MAX_VALUE;
        }
        long trial = window[0] + recheckNanos;
        long wait = recheckNanos;
        while (trial < window[1]) {
            wait *= 2;
            trial += wait;
        }
        return trial;
    }

    private long nextWindowStart(long[] window) {
        long next = Long.MAX_VALUE;
        for (long[] w : flapWindows) {
            if (w[0] >= window[1]) {
                next = Math.min(next, w[0]);
            }
        }
        return next;
    }

    /** Requests the upstream could have accepted in [from, to), capped at {@code offeredRps} (NaN: no cap). */
    public double requestsOver(long from, long to, double offeredRps) {
        return over(from, to, offeredRps, this::capacityAt);
    }

    /** {@link #requestsOver} for the capacity a proxy that keeps §7's trial schedule can reach. */
    public double reachableOver(long from, long to, double offeredRps, long recheckNanos) {
        return over(from, to, offeredRps, t -> reachableAt(t, recheckNanos));
    }

    private static double over(long from, long to, double offeredRps, java.util.function.LongToDoubleFunction at) {
        long step = TimeUnit.MILLISECONDS.toNanos(10);
        double sum = 0;
        for (long t = from; t < to; t += step) {
            double c = at.applyAsDouble(t);
            sum += (Double.isNaN(offeredRps) ? c : Math.min(c, offeredRps)) * Math.min(step, to - t) / 1e9;
        }
        return sum;
    }
}
