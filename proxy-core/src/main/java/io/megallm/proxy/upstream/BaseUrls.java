package io.megallm.proxy.upstream;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.function.LongSupplier;

/**
 * The upstream base URLs in order of preference (contract §15): the first is used while it
 * answers; a URL whose connection failed (refused, timed out, TLS or proxy failure) or that gave
 * no response head within MEGALLM_TIMEOUT is passed over for a short pause that doubles with each
 * failure in a row (1 s up to 60 s), then tried again.
 * One pool set per URL, all under one connection cap. Lock-free: a URL's state is two longs.
 * With one URL nothing is passed over (there is nowhere else to go), but its state is kept all
 * the same for /metrics and the log.
 */
public final class BaseUrls {

    private static final Logger log = LoggerFactory.getLogger(BaseUrls.class);
    /** At most one warning a URL this often: a flapping upstream must not flood app.log. */
    static final long WARN_EVERY_NANOS = TimeUnit.SECONDS.toNanos(10);

    static final long FIRST_PAUSE_NANOS = TimeUnit.SECONDS.toNanos(1);
    static final long MAX_PAUSE_NANOS = TimeUnit.SECONDS.toNanos(60);

    private final List<UpstreamPools> pools;
    private final LongSupplier nanoClock;
    /** Per URL: the nanoTime its pause ends (0: not paused). */
    private final AtomicLongArray pausedUntil;
    /** Per URL: connection failures in a row. */
    private final AtomicLongArray failures;
    /** Per URL: when its last warning was logged (nanoTime), and whether the current outage has one. */
    private final AtomicLongArray lastWarning;
    private final AtomicIntegerArray warned;

    public BaseUrls(List<UpstreamPools> pools, LongSupplier nanoClock) {
        if (pools.isEmpty()) {
            throw new IllegalArgumentException("at least one base URL");
        }
        this.pools = List.copyOf(pools);
        this.nanoClock = nanoClock;
        this.pausedUntil = new AtomicLongArray(pools.size());
        this.failures = new AtomicLongArray(pools.size());
        this.lastWarning = new AtomicLongArray(pools.size());
        this.warned = new AtomicIntegerArray(pools.size());
    }

    public static BaseUrls of(UpstreamPools single) {
        return new BaseUrls(List.of(single), System::nanoTime);
    }

    public int size() {
        return pools.size();
    }

    public UpstreamPools pools(int index) {
        return pools.get(index);
    }

    /**
     * The URL to use now, skipping those in {@code triedMask} (bit i: URL i already failed this
     * request): the first one not paused, else the one whose pause ends first; -1 when every URL
     * is in the mask.
     */
    public int pick(long triedMask) {
        long now = nanoClock.getAsLong();
        int soonest = -1;
        long soonestEnd = Long.MAX_VALUE;
        for (int i = 0; i < pools.size(); i++) {
            if (i < 64 && (triedMask & (1L << i)) != 0) {
                continue;
            }
            long until = pausedUntil.get(i);
            if (until == 0 || until - now <= 0) {
                return i;
            }
            if (soonest < 0 || until - soonestEnd < 0) {
                soonest = i;
                soonestEnd = until;
            }
        }
        return soonest;
    }

    /**
     * URL {@code i} could not be reached ({@code cause}) or did not answer in time (null): pause
     * it, twice as long as last time in a row.
     */
    public void failed(int i, Throwable cause) {
        long n = failures.incrementAndGet(i);
        long pause = FIRST_PAUSE_NANOS << Math.min(n - 1, 6);
        long now = nanoClock.getAsLong();
        pausedUntil.set(i, now + Math.min(pause, MAX_PAUSE_NANOS));
        long last = lastWarning.get(i);
        if (n == 1 && (last == 0 || now - last >= WARN_EVERY_NANOS) && lastWarning.compareAndSet(i, last, now)) {
            warned.set(i, 1);
            log.warn("upstream {} failed ({}){}",
                    pools.get(i).target(), ConnectFailures.describe(cause), pools.size() > 1
                            ? "; requests go to the next base URL, and it is tried again after 1 s, doubling while it fails"
                            : "");
        }
    }

    /** URL {@code i} answered: its pause and failure count are over. */
    public void succeeded(int i) {
        long n = failures.get(i);
        if (n != 0 || pausedUntil.get(i) != 0) {
            failures.set(i, 0);
            pausedUntil.set(i, 0);
            if (warned.compareAndSet(i, 1, 0)) {
                log.info("upstream {} answers again", pools.get(i).target());
            }
        }
    }

    /** What /health and /metrics show for URL {@code i}: {@code available} or {@code paused}. */
    public String state(int i) {
        long until = pausedUntil.get(i);
        return until != 0 && until - nanoClock.getAsLong() > 0 ? "paused" : "available";
    }

    public void close() {
        pools.forEach(UpstreamPools::close);
    }
}
