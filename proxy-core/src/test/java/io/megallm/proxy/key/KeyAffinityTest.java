package io.megallm.proxy.key;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Contract §7, affinity: rendezvous hashing of prompt_cache_key/user over the available keys. */
class KeyAffinityTest {

    private static final ApiKey[] NONE = new ApiKey[0];

    private final AtomicLong clock = new AtomicLong(7L);
    private KeyPool pool;
    private KeySelector selector;

    @BeforeEach
    void setUp() {
        pool = new KeyPool(clock::get);
        List<String> secrets = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            secrets.add("sk-mega-affinity-key-00000" + i);
        }
        pool.reload(secrets);
        selector = new KeySelector(pool);
    }

    private static long value(int i) {
        // Any well-spread 64-bit values stand in for the JSON check's hashes.
        long z = i * 0x9e3779b97f4a7c15L + 1;
        return z == 0 ? 1 : z;
    }

    @Test
    void oneValueAlwaysGetsTheSameKeyWhileItIsAvailable() {
        ApiKey first = selector.next(NONE, 0, value(1));
        for (int i = 0; i < 100; i++) {
            assertSame(first, selector.next(NONE, 0, value(1)));
        }
        assertTrue(selector.firstChoice(value(1), first));
    }

    @Test
    void losingAKeyMovesOnlyItsOwnShare() {
        Map<Integer, ApiKey> before = new HashMap<>();
        for (int v = 0; v < 2000; v++) {
            before.put(v, selector.next(NONE, 0, value(v)));
        }
        ApiKey lost = pool.keys().get(3);
        pool.markFailed(lost, 401);
        int moved = 0;
        for (int v = 0; v < 2000; v++) {
            ApiKey now = selector.next(NONE, 0, value(v));
            assertNotSame(lost, now);
            if (before.get(v) != lost) {
                assertSame(before.get(v), now, "value " + v + " was not on the lost key and must stay");
            } else {
                moved++;
                assertTrue(!selector.firstChoice(value(v), now));
            }
        }
        assertTrue(moved > 0);
    }

    @Test
    void valuesSpreadOverAllKeys() {
        Map<ApiKey, Integer> counts = new IdentityHashMap<>();
        for (int v = 0; v < 8000; v++) {
            counts.merge(selector.next(NONE, 0, value(v)), 1, Integer::sum);
        }
        assertEquals(8, counts.size());
        counts.values().forEach(c -> assertTrue(c > 500, "every key gets a fair share: " + counts.values()));
    }

    @Test
    void aTriedKeyIsSkippedForTheSecondChoice() {
        ApiKey first = selector.next(NONE, 0, value(5));
        ApiKey second = selector.next(new ApiKey[] {first}, 1, value(5));
        assertNotSame(first, second);
        assertSame(second, selector.next(new ApiKey[] {first}, 1, value(5)));
    }

    @Test
    void withoutAValueSelectionStaysStrictRoundRobin() {
        List<ApiKey> keys = pool.keys();
        for (int i = 0; i < 24; i++) {
            assertSame(keys.get(i % 8), selector.next(NONE, 0, 0L));
        }
    }
}
