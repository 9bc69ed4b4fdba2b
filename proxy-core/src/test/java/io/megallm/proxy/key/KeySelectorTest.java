package io.megallm.proxy.key;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

class KeySelectorTest {

    private static final ApiKey[] NONE = new ApiKey[0];

    private final AtomicLong clock = new AtomicLong(42L);
    private KeyPool pool;
    private KeySelector selector;
    private ApiKey a;
    private ApiKey b;
    private ApiKey c;

    @BeforeEach
    void setUp() {
        pool = new KeyPool(clock::get);
        pool.reload(List.of("sk-mega-key-a-000000000001", "sk-mega-key-b-000000000002", "sk-mega-key-c-000000000003"));
        selector = new KeySelector(pool);
        a = pool.keys().get(0);
        b = pool.keys().get(1);
        c = pool.keys().get(2);
    }

    @Test
    void sequentialRoundRobinIsStrictAndExactlyFair() {
        Map<ApiKey, Integer> counts = new IdentityHashMap<>();
        ApiKey[] order = {a, b, c};
        for (int i = 0; i < 300; i++) {
            ApiKey k = selector.next(NONE, 0);
            assertSame(order[i % 3], k, "selection " + i);
            counts.merge(k, 1, Integer::sum);
        }
        assertEquals(100, counts.get(a));
        assertEquals(100, counts.get(b));
        assertEquals(100, counts.get(c));
    }

    @Test
    void failedKeysTurnIsNotGivenTwiceToItsNeighbour() {
        pool.markFailed(b, 401);
        Map<ApiKey, Integer> counts = new IdentityHashMap<>();
        ApiKey previous = null;
        for (int i = 0; i < 300; i++) {
            ApiKey k = selector.next(NONE, 0);
            assertNotNull(k);
            assertNotSame(b, k);
            assertNotSame(previous, k, "the same key twice in a row at selection " + i);
            counts.merge(k, 1, Integer::sum);
            previous = k;
        }
        assertEquals(150, counts.get(a));
        assertEquals(150, counts.get(c));
    }

    @Test
    void firstKeyFailedStillAlternatesFairly() {
        pool.markFailed(a, 403);
        Map<ApiKey, Integer> counts = new IdentityHashMap<>();
        for (int i = 0; i < 300; i++) {
            counts.merge(selector.next(NONE, 0), 1, Integer::sum);
        }
        assertEquals(Map.of(b, 150, c, 150), Map.copyOf(counts));
    }

    @Test
    void coolingKeyIsSkippedAndReturnsWhenTheClockPasses() {
        pool.coolDown(c, 429, 10);
        for (int i = 0; i < 10; i++) {
            assertNotSame(c, selector.next(NONE, 0));
        }
        clock.addAndGet(TimeUnit.SECONDS.toNanos(10));

        Map<ApiKey, Integer> counts = new IdentityHashMap<>();
        for (int i = 0; i < 30; i++) {
            counts.merge(selector.next(NONE, 0), 1, Integer::sum);
        }
        assertEquals(Map.of(a, 10, b, 10, c, 10), Map.copyOf(counts));
    }

    @Test
    void triedKeysAreExcluded() {
        ApiKey[] tried = new ApiKey[3];
        tried[0] = a;
        for (int i = 0; i < 10; i++) {
            ApiKey k = selector.next(tried, 1);
            assertNotNull(k);
            assertNotSame(a, k);
        }
        tried[1] = c;
        for (int i = 0; i < 10; i++) {
            assertSame(b, selector.next(tried, 2));
        }
    }

    @Test
    void onlyTheFirstTriedCountEntriesCount() {
        ApiKey[] tried = {b, a, c};
        // Only b counts as tried; the stale entries after it must not exclude a or c.
        Map<ApiKey, Integer> counts = new IdentityHashMap<>();
        for (int i = 0; i < 20; i++) {
            counts.merge(selector.next(tried, 1), 1, Integer::sum);
        }
        assertEquals(Map.of(a, 10, c, 10), Map.copyOf(counts));
    }

    @Test
    void nullWhenEveryKeyWasTried() {
        assertNull(selector.next(new ApiKey[] {a, b, c}, 3));
        assertNull(selector.next(new ApiKey[] {c, a, b, null}, 3));
    }

    @Test
    void nullWhenTheUntriedKeysAreUnavailable() {
        pool.markFailed(b, 401);
        pool.coolDown(c, 429, 60);

        assertNull(selector.next(new ApiKey[] {a}, 1));
    }

    @Test
    void nullWhenNoKeyIsAvailable() {
        pool.markFailed(a, 401);
        pool.markFailed(b, 402);
        pool.coolDown(c, 429, 60);

        assertNull(selector.next(NONE, 0));
    }

    @Test
    void nullWhenThePoolIsEmpty() {
        KeyPool empty = new KeyPool(clock::get);

        assertNull(new KeySelector(empty).next(NONE, 0));
    }

    @Test
    void resetBringsKeysBackIntoRotation() {
        pool.markFailed(a, 401);
        pool.markFailed(b, 401);
        pool.markFailed(c, 401);
        assertNull(selector.next(NONE, 0));

        pool.resetFailed();

        List<ApiKey> got = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            got.add(selector.next(NONE, 0));
        }
        assertTrue(got.containsAll(List.of(a, b, c)), got.toString());
    }

    @Test
    void reloadIsPickedUpByTheNextSelection() {
        pool.reload(List.of("sk-mega-key-d-000000000004"));
        ApiKey d = pool.keys().get(0);

        for (int i = 0; i < 5; i++) {
            assertSame(d, selector.next(NONE, 0));
        }
    }

    @Test
    void concurrentSelectionsAreExactlyFair() throws Exception {
        Map<ApiKey, Long> counts = runConcurrently(8, 3000);

        assertEquals(3, counts.size());
        assertEquals(8L * 3000, counts.values().stream().mapToLong(Long::longValue).sum());
        long max = counts.values().stream().mapToLong(Long::longValue).max().orElseThrow();
        long min = counts.values().stream().mapToLong(Long::longValue).min().orElseThrow();
        // Every successful CAS hands out one distinct cursor value, so the split is exact.
        assertTrue(max - min <= 1, counts::toString);
        assertEquals(8000L, counts.get(a));
        assertEquals(8000L, counts.get(b));
        assertEquals(8000L, counts.get(c));
    }

    @Test
    void concurrentSelectionsWithAFailedKeyAreExactlyFair() throws Exception {
        pool.markFailed(b, 401);

        Map<ApiKey, Long> counts = runConcurrently(8, 3000);

        assertEquals(Map.of(a, 12_000L, c, 12_000L), Map.copyOf(counts));
    }

    private Map<ApiKey, Long> runConcurrently(int threads, int perThread) throws Exception {
        CountDownLatch ready = new CountDownLatch(threads);
        CountDownLatch start = new CountDownLatch(1);
        List<Map<ApiKey, Long>> perThreadCounts = new ArrayList<>();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<Thread> workers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            Map<ApiKey, Long> mine = new HashMap<>();
            perThreadCounts.add(mine);
            Thread w = new Thread(() -> {
                try {
                    ready.countDown();
                    start.await();
                    for (int i = 0; i < perThread; i++) {
                        ApiKey k = selector.next(NONE, 0);
                        if (k == null) {
                            throw new AssertionError("no key handed out");
                        }
                        mine.merge(k, 1L, Long::sum);
                    }
                } catch (Throwable e) {
                    failure.compareAndSet(null, e);
                }
            }, "selector-" + t);
            workers.add(w);
            w.start();
        }
        assertTrue(ready.await(30, TimeUnit.SECONDS));
        start.countDown();
        for (Thread w : workers) {
            w.join();
        }
        if (failure.get() != null) {
            throw new AssertionError(failure.get());
        }
        Map<ApiKey, Long> total = new HashMap<>();
        perThreadCounts.forEach(m -> m.forEach((k, n) -> total.merge(k, n, Long::sum)));
        return total;
    }
}
