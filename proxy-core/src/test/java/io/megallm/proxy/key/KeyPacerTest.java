package io.megallm.proxy.key;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Pacing a key by what its 429s taught: when it starts, the rate it learns, the slots it hands
 * out, how the pace grows and ends, and that selection and waiting respect it. Time is injected.
 */
class KeyPacerTest {

    private static final long S = TimeUnit.SECONDS.toNanos(1);
    private static final long MS = TimeUnit.MILLISECONDS.toNanos(1);

    private final AtomicLong nanos = new AtomicLong(1_000 * S);
    private final KeyPool pool = new KeyPool(KeyClock.of(nanos::get, System::currentTimeMillis),
            new KeyPolicy(60, 300, 600));

    private long now() {
        return nanos.get();
    }

    private void advance(long n) {
        nanos.addAndGet(n);
    }

    private ApiKey key(int i) {
        return pool.keys().get(i);
    }

    private void accept(ApiKey k, int times) {
        for (int i = 0; i < times; i++) {
            pool.recordSuccess(k, 200);
        }
    }

    /** Two rests 1 s apart with {@code between} acceptances: a key limited at about that rate. */
    private void learn(ApiKey k, int between) {
        pool.limited(k, 429, 1);
        advance(S);
        accept(k, between);
        pool.limited(k, 429, 1);
    }

    @Test
    void aKeyIsNotPacedAfterOne429() {
        pool.reload(List.of("sk-mega-aaaaaaaaaaaaaaaaaaaa0001"));
        accept(key(0), 50);
        pool.limited(key(0), 429, 1);
        assertEquals(0, key(0).pacedPerSecond(now()));
        advance(S);
        for (int i = 0; i < 100; i++) {
            assertTrue(key(0).pacer().tryTake(now()), "unpaced: every request may go");
        }
    }

    @Test
    void twoRestsCloseTogetherTeachTheRateAcceptedBetweenThem() {
        pool.reload(List.of("sk-mega-aaaaaaaaaaaaaaaaaaaa0001"));
        pool.limited(key(0), 429, 1);
        advance(2 * S);
        accept(key(0), 20);
        pool.limited(key(0), 429, 1);
        // 20 accepted in the 2 s from the first 429 to the second.
        assertEquals(10.0, key(0).pacedPerSecond(now()), 1e-9);
    }

    @Test
    void aLongRestCountsAsOneSecondOfWhatTheKeyCouldAccept() {
        pool.reload(List.of("sk-mega-aaaaaaaaaaaaaaaaaaaa0001"));
        pool.limited(key(0), 429, 5);
        advance(5 * S);
        advance(2 * S);
        accept(key(0), 30);
        pool.limited(key(0), 429, 1);
        // Counted from 1 s before the 5-s rest ended: 30 in 3 s. A bucket that overflowed while
        // the key rested was not capacity it had.
        assertEquals(10.0, key(0).pacedPerSecond(now()), 1e-9);
    }

    @Test
    void rests429sMoreThanTenSecondsApartAreNoSustainedLimit() {
        pool.reload(List.of("sk-mega-aaaaaaaaaaaaaaaaaaaa0001"));
        learn(key(0), 10);
        assertTrue(key(0).pacedPerSecond(now()) > 0);
        advance(11 * S);
        accept(key(0), 100);
        pool.limited(key(0), 429, 1);
        assertEquals(0, key(0).pacedPerSecond(now()), "paced no more");
    }

    @Test
    void aRestWithFewerThanThreeAcceptancesKeepsTheRateItHad() {
        pool.reload(List.of("sk-mega-aaaaaaaaaaaaaaaaaaaa0001"));
        learn(key(0), 10);
        advance(S);
        accept(key(0), 2);
        pool.limited(key(0), 429, 1);
        // Two in a second is what an account-wide burst lets through, not the key's rate.
        assertEquals(10.0, key(0).pacedPerSecond(now()), 1e-9);
    }

    @Test
    void a429ThatAnswersARequestSentBeforeTheRestTeachesNothing() {
        pool.reload(List.of("sk-mega-aaaaaaaaaaaaaaaaaaaa0001"));
        learn(key(0), 10);
        accept(key(0), 40);
        // Still resting: this 429 was in flight when the rest began.
        pool.limited(key(0), 429, 1);
        assertEquals(10.0, key(0).pacedPerSecond(now()), 1e-9);
    }

    @Test
    void aPacedKeyHandsOutSlotsAtItsRatePlusHeadroomAfterASmallBurst() {
        pool.reload(List.of("sk-mega-aaaaaaaaaaaaaaaaaaaa0001"));
        learn(key(0), 10);
        advance(S);
        KeyPacer pacer = key(0).pacer();
        // Right after the rest: three at once (the slot due and two of tolerance), then none.
        assertTrue(pacer.tryTake(now()));
        assertTrue(pacer.tryTake(now()));
        assertTrue(pacer.tryTake(now()));
        assertFalse(pacer.tryTake(now()));
        assertFalse(pacer.hasSlot(now()));
        long wait = pacer.nanosUntilSlot(now());
        // 10/s × (1.05 + 0.05 × 1 s since the 429) = 11/s: one slot per ~91 ms.
        assertEquals(SECOND_NANOS / 11, wait, MS);
        // The pace grows while time passes, so the slot is a hair earlier than the wait said.
        advance(wait + MS);
        assertTrue(pacer.tryTake(now()));
        assertFalse(pacer.tryTake(now()));
    }

    private static final long SECOND_NANOS = S;

    @Test
    void overTenSecondsAPacedKeyTakesAboutItsGrowingRate() {
        pool.reload(List.of("sk-mega-aaaaaaaaaaaaaaaaaaaa0001"));
        learn(key(0), 10);
        KeyPacer pacer = key(0).pacer();
        int taken = 0;
        for (int step = 0; step < 10_000; step++) {
            // A request every millisecond for ten seconds, each taking a slot if there is one.
            if (pacer.tryTake(now())) {
                taken++;
            }
            advance(MS);
        }
        // ∫ 10 × (1.05 + 0.05 t) dt over 10 s = 130, plus the first burst of two.
        assertEquals(132, taken, 3);
    }

    @Test
    void pacingEndsFortySecondsAfterTheLast429() {
        pool.reload(List.of("sk-mega-aaaaaaaaaaaaaaaaaaaa0001"));
        learn(key(0), 10);
        advance(41 * S);
        assertEquals(0, key(0).pacedPerSecond(now()));
        for (int i = 0; i < 100; i++) {
            assertTrue(key(0).pacer().tryTake(now()));
        }
    }

    @Test
    void aResetForgetsThePace() {
        pool.reload(List.of("sk-mega-aaaaaaaaaaaaaaaaaaaa0001"));
        learn(key(0), 10);
        pool.resetFailed();
        assertEquals(0, key(0).pacedPerSecond(now()));
        pool.limited(key(0), 429, 1);
        assertEquals(0, key(0).pacedPerSecond(now()), "one 429 after the reset is a first one again");
    }

    @Test
    void manyThreadsRacingForSlotsGetExactlyTheSlotsThereAre() throws Exception {
        pool.reload(List.of("sk-mega-aaaaaaaaaaaaaaaaaaaa0001"));
        learn(key(0), 10);
        advance(S);
        KeyPacer pacer = key(0).pacer();
        ExecutorService threads = Executors.newFixedThreadPool(8);
        try {
            CountDownLatch go = new CountDownLatch(1);
            AtomicInteger won = new AtomicInteger();
            Future<?>[] f = new Future<?>[8];
            for (int t = 0; t < f.length; t++) {
                f[t] = threads.submit(() -> {
                    go.await();
                    for (int i = 0; i < 1000; i++) {
                        if (pacer.tryTake(now())) {
                            won.incrementAndGet();
                        }
                    }
                    return null;
                });
            }
            go.countDown();
            for (Future<?> x : f) {
                x.get(30, TimeUnit.SECONDS);
            }
            assertEquals(3, won.get(), "the slot due and two of tolerance, at one instant, among 8,000 tries");
        } finally {
            threads.shutdownNow();
        }
    }

    @Test
    void selectionSkipsAPacedKeyWithoutASlotAndTheUnpacedChoiceStillHasIt() {
        pool.reload(List.of("sk-mega-aaaaaaaaaaaaaaaaaaaa0001", "sk-mega-bbbbbbbbbbbbbbbbbbbb0002"));
        learn(key(0), 10);
        advance(S);
        KeySelector selector = new KeySelector(pool);
        ApiKey[] none = new ApiKey[4];
        int onPaced = 0;
        for (int i = 0; i < 10; i++) {
            ApiKey k = selector.next(none, 0);
            assertNotNull(k);
            if (k == key(0)) {
                onPaced++;
            }
        }
        assertEquals(3, onPaced, "the paced key took its three slots; the other key took the rest");
        ApiKey[] triedB = {key(1), null};
        assertNull(selector.next(triedB, 1), "no slot on the paced key, and the other was tried");
        assertSame(key(0), selector.next(triedB, 0, 1, 0, false), "a request that cannot wait may still have it");
    }

    @Test
    void anAffinityRequestMovesToItsSecondChoiceWhileItsKeyHasNoSlot() {
        pool.reload(List.of("sk-mega-aaaaaaaaaaaaaaaaaaaa0001", "sk-mega-bbbbbbbbbbbbbbbbbbbb0002"));
        KeySelector selector = new KeySelector(pool);
        ApiKey[] none = new ApiKey[1];
        long affinity = 42;
        ApiKey first = selector.next(none, 0, 0, affinity);
        ApiKey second = first == key(0) ? key(1) : key(0);
        learn(first, 10);
        advance(S);
        for (int i = 0; i < 3; i++) {
            assertSame(first, selector.next(none, 0, 0, affinity));
        }
        assertSame(second, selector.next(none, 0, 0, affinity), "slots used up: the second choice");
    }

    @Test
    void theWaitForAKeyEndsAtAPacedKeysNextSlot() {
        pool.reload(List.of("sk-mega-aaaaaaaaaaaaaaaaaaaa0001"));
        learn(key(0), 10);
        assertEquals(S, pool.nanosUntilNextUsable(), "resting: the rest's end");
        advance(S);
        assertEquals(0, pool.nanosUntilNextUsable());
        assertEquals(1, pool.usableNow());
        for (int i = 0; i < 3; i++) {
            key(0).pacer().tryTake(now());
        }
        assertEquals(0, pool.usableNow(), "usable, but no slot now");
        assertEquals(S / 11, pool.nanosUntilNextUsable(), MS);
    }
}
