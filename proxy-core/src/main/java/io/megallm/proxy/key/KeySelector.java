package io.megallm.proxy.key;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Round-robin over the keys usable now. The cursor moves past the key handed out with a CAS,
 * so an unavailable key does not give its turn to its neighbour twice and concurrent callers
 * get distinct keys: one request per key per round. No lock.
 */
public final class KeySelector {

    private final KeyPool pool;
    private final AtomicLong cursor = new AtomicLong();

    public KeySelector(KeyPool pool) {
        this.pool = pool;
    }

    /**
     * The next usable key that is not among the first {@code triedCount} entries of
     * {@code tried}, or null when there is none.
     */
    public ApiKey next(ApiKey[] tried, int triedCount) {
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
                if (k.state().usableAt(now) && !contains(tried, triedCount, k)) {
                    found = k;
                    break;
                }
            }
            if (found == null) {
                return null;
            }
            if (cursor.compareAndSet(start, start + offset + 1)) {
                return found;
            }
        }
    }

    private static boolean contains(ApiKey[] tried, int count, ApiKey key) {
        for (int i = 0; i < count; i++) {
            if (tried[i] == key) {
                return true;
            }
        }
        return false;
    }
}
