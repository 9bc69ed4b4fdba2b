package io.megallm.proxy.server.shared;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/**
 * Counters summed over every instance that shares a Redis (contract §14), for the client-limit
 * windows to use instead of their own adders. (Usage totals are shared by {@link SharedUsage},
 * which reads the counters the ledger already keeps instead of adding to counters by name.)
 *
 * <p>A counter's name is the caller's and goes into Redis as it is: it must hold no secret (a
 * client key's SHA-256, never the key). A window is a counter with a lifetime, named by its
 * window ("limit:&lt;client sha&gt;:rpm:&lt;epoch minute&gt;").
 */
public interface SharedCounters {

    /** Adds {@code delta} now. Called on event loops: returns at once, never waits on Redis. */
    void add(String counter, long delta, long ttlMillis);

    /**
     * This instance's view of the counter over all instances: the last total Redis gave plus what
     * was added here since (exact within the batching, about a second). Without Redis: this
     * instance's own sum.
     */
    long total(String counter);

    /**
     * As {@link #total(String)} for a window that lives {@code ttlMillis} (0: unknown), so that a
     * counter first met by a read knows when it ends, as one met by an add does.
     */
    default long total(String counter, long ttlMillis) {
        return total(counter);
    }

    /** The in-process default: every instance counts alone, as without REDIS_URL. */
    static SharedCounters local() {
        return new LocalCounters();
    }

    /** Adders by name; a window is dropped once its lifetime is over (checked every 1024 adds). */
    final class LocalCounters implements SharedCounters {

        private record Entry(LongAdder sum, long expiresAtMillis) {
        }

        private final ConcurrentHashMap<String, Entry> counters = new ConcurrentHashMap<>();
        private final LongAdder adds = new LongAdder();

        @Override
        public void add(String counter, long delta, long ttlMillis) {
            long now = System.currentTimeMillis();
            Entry e = counters.get(counter);
            if (e == null || e.expiresAtMillis() < now) {
                // First use of a name, or its window is over: the one map update that may wait on a bin.
                e = counters.compute(counter, (k, old) -> old == null || old.expiresAtMillis() < now
                        ? new Entry(new LongAdder(), ttlMillis > 0 ? now + ttlMillis : Long.MAX_VALUE) : old);
            }
            e.sum().add(delta);
            adds.increment();
            if ((adds.sum() & 1023) == 0) {
                counters.values().removeIf(x -> x.expiresAtMillis() < now);
            }
        }

        @Override
        public long total(String counter) {
            Entry e = counters.get(counter);
            return e == null || e.expiresAtMillis() < System.currentTimeMillis() ? 0 : e.sum().sum();
        }
    }
}
