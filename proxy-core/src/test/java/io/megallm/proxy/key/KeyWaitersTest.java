package io.megallm.proxy.key;

import io.netty.channel.EventLoop;
import io.netty.channel.embedded.EmbeddedChannel;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Contract §7, waiting for a key: arrival order, callbacks on the waiter's own loop, a client that
 * leaves is out at once, a bound, and one wake-up at the earliest rest end. Time is Netty's
 * embedded loop clock and the pool's injected clock, moved together: nothing sleeps.
 */
class KeyWaitersTest {

    private final AtomicLong nanos = new AtomicLong(1_000_000_000L);
    private final List<String> events = new ArrayList<>();
    private EmbeddedChannel channel;
    private EventLoop loop;
    private KeyPool pool;
    private ApiKey a;
    private ApiKey b;
    private KeyWaiters waiters;

    @BeforeEach
    void setUp() {
        channel = new EmbeddedChannel();
        channel.freezeTime();
        loop = channel.eventLoop();
        pool = new KeyPool(KeyClock.of(nanos::get, System::currentTimeMillis), new KeyPolicy(60, 300, 600));
        pool.reload(List.of("sk-mega-aaaaaaaaaaaaaaaaaaaa0001", "sk-mega-bbbbbbbbbbbbbbbbbbbb0002"));
        a = pool.keys().get(0);
        b = pool.keys().get(1);
        waiters = new KeyWaiters(pool, 3);
    }

    @AfterEach
    void tearDown() {
        channel.finishAndReleaseAll();
    }

    private void advanceSeconds(long s) {
        nanos.addAndGet(TimeUnit.SECONDS.toNanos(s));
        channel.advanceTimeBy(s, TimeUnit.SECONDS);
        channel.runScheduledPendingTasks();
        channel.runPendingTasks();
    }

    private KeyWaiters.Waiter await(String name, long seconds) {
        return await(name, seconds, false);
    }

    private KeyWaiters.Waiter await(String name, long seconds, boolean keepPlace) {
        return waiters.await(loop, TimeUnit.SECONDS.toNanos(seconds), callback(name), keepPlace);
    }

    @Test
    void aWokenWaiterThatFindsTheKeyTakenGoesBackToTheFront() {
        pool.limited(a, 429, 5);
        pool.limited(b, 429, 5);
        await("first", 10);
        await("second", 10);
        waiters.wake(1);
        channel.runPendingTasks();
        assertEquals(List.of("first woken"), events);
        // Another request was quicker: the first waits on, still ahead of the second (§7: arrival order).
        await("first", 10, true);
        waiters.wake(1);
        channel.runPendingTasks();
        assertEquals(List.of("first woken", "first woken"), events);
        assertEquals(1, waiters.size());
        assertTrue(waiters.size() > 0, "the second still waits");
    }

    @Test
    void aReturningKeyWakesOneWaiterAndEachSuccessTheNext() {
        pool.limited(a, 429, 5);
        pool.limited(b, 429, 2);
        await("first", 10);
        await("second", 10);
        await("third", 10);
        assertEquals(3, waiters.size());
        advanceSeconds(1);
        assertEquals(List.of(), events);
        advanceSeconds(1);
        // One key back: one waiter, not the whole queue onto one key just back from a 429.
        assertEquals(List.of("first woken"), events);
        waiters.served();
        channel.runPendingTasks();
        assertEquals(List.of("first woken", "second woken"), events, "a success lets the next one try");
        advanceSeconds(3);
        assertEquals(List.of("first woken", "second woken", "third woken"), events,
                "the next rest end wakes the next waiter");
        assertEquals(0, waiters.size());
    }

    @Test
    void aWaiterForAPacedKeyIsWokenAtItsNextSlot() {
        // Key a learns a pace of 10/s (two 429s a second apart, ten accepted between; the second
        // says Retry-After: 0, so no rest banks slots); b is out.
        pool.markFailed(b, 401);
        pool.recordAttempt(a);
        pool.limited(a, 429, 1);
        advanceSeconds(1);
        for (int i = 0; i < 10; i++) {
            pool.recordAttempt(a);
            pool.recordSuccess(a, 200);
        }
        pool.recordAttempt(a);
        pool.limited(a, 429, 0);
        advanceSeconds(1);
        KeySelector selector = new KeySelector(pool);
        ApiKey[] none = new ApiKey[1];
        for (int i = 0; i < 3; i++) {
            assertNotNull(selector.next(none, 0), "the slot due and two of tolerance");
        }
        assertNull(selector.next(none, 0));
        await("w", 10);
        long slot = pool.nanosUntilNextUsable();
        advanceNanos(slot - 1_000_000);
        assertEquals(List.of(), events, "not before the slot");
        advanceNanos(2_000_000);
        assertEquals(List.of("w woken"), events);
        assertNotNull(selector.next(none, 0), "and the slot is there for it");
    }

    private void advanceNanos(long n) {
        nanos.addAndGet(n);
        channel.advanceTimeBy(n, TimeUnit.NANOSECONDS);
        channel.runScheduledPendingTasks();
        channel.runPendingTasks();
    }

    @Test
    void aKeyBackInRotationByAStateChangeWakesTheWaitersAtOnce() {
        pool.limited(a, 429, 30);
        pool.markFailed(b, 401);
        await("w", 10);
        pool.resetFailed();
        channel.runPendingTasks();
        assertEquals(List.of("w woken"), events);
    }

    @Test
    void aReloadWakesTheWaiters() {
        pool.limited(a, 429, 30);
        pool.limited(b, 429, 30);
        await("w", 10);
        pool.reload(List.of("sk-mega-aaaaaaaaaaaaaaaaaaaa0001", "sk-mega-cccccccccccccccccccc0003"));
        channel.runPendingTasks();
        assertEquals(List.of("w woken"), events);
    }

    @Test
    void aWaiterWithNoKeyByItsDeadlineIsToldSoOnce() {
        pool.limited(a, 429, 30);
        pool.limited(b, 429, 30);
        await("w", 3);
        advanceSeconds(3);
        assertEquals(List.of("w timed out"), events);
        assertEquals(0, waiters.size());
        advanceSeconds(30);
        assertEquals(List.of("w timed out"), events, "no wake-up after the deadline");
    }

    @Test
    void aClientThatLeavesIsOutAtOnceAndHearsNothing() {
        pool.limited(a, 429, 2);
        pool.limited(b, 429, 2);
        KeyWaiters.Waiter gone = await("gone", 10);
        await("stays", 10);
        gone.cancel();
        assertEquals(1, waiters.size());
        advanceSeconds(2);
        assertEquals(List.of("stays woken"), events);
    }

    @Test
    void aFullWaitRefusesAtOnce() {
        pool.limited(a, 429, 5);
        pool.limited(b, 429, 5);
        assertNotNull(await("1", 10));
        assertNotNull(await("2", 10));
        KeyWaiters.Waiter third = await("3", 10);
        assertNotNull(third);
        assertNull(await("4", 10), "bounded: the fourth is refused");
        third.cancel();
        assertNotNull(await("5", 10), "a place freed by a client that left is free again");
    }

    /**
     * A request that tried a (it answered 500, so it is still usable) and waits for b, resting:
     * a does not end its wait at once (it went back to a, round after round, before the review
     * fix), b's return does. Counting every usable key instead of only the tried ones lost the
     * wake of a key that came back just before the look (the keys bench's recovery went 0 -> 2.6 s).
     */
    @Test
    void aUsableKeyTheWaiterMayNotTakeDoesNotWakeItButOneMoreDoes() {
        pool.limited(b, 429, 2);
        waiters.await(loop, TimeUnit.SECONDS.toNanos(10), callback("tried-a"), false, 1);
        channel.runPendingTasks();
        assertEquals(List.of(), events, "a, which it tried, is no reason to wake");
        advanceSeconds(2);
        assertEquals(List.of("tried-a woken"), events, "b's return wakes it");
        events.clear();
        // Both usable, but it saw (and may not take) only one: the other came back since its look.
        waiters.await(loop, TimeUnit.SECONDS.toNanos(10), callback("late"), false, 1);
        channel.runPendingTasks();
        assertEquals(List.of("late woken"), events);
    }

    /**
     * Found by KeyLifecycleModelTest (seed 1535): a key on probation (back from its second rest in
     * a row) takes one request at a time, its probe, and the others wait. A probe answered by a
     * failure that is not the key's (a 5xx, a 403 not yet blamed, no answer) freed the probe but
     * woke no waiter: they slept beside a key they could take until the probe's lease ran out.
     */
    @Test
    void aProbeAnsweredByAFailureThatIsNotTheKeysWakesAWaiter() {
        pool.limited(b, 429, 60);
        for (int i = 0; i < 2; i++) {
            pool.recordAttempt(a);
            pool.limited(a, 429, 1);
            advanceSeconds(1);
        }
        assertEquals(a, new KeySelector(pool).next(new ApiKey[1], 0), "the probe");
        pool.recordAttempt(a);
        await("w", 10);
        channel.runPendingTasks();
        assertEquals(List.of(), events, "the probe is out: the waiter waits");

        pool.recordTransient(a, 503);
        channel.runPendingTasks();

        assertEquals(List.of("w woken"), events, "the probe is back, and so is the key");
    }

    private KeyWaiters.Callback callback(String name) {
        return new KeyWaiters.Callback() {
            @Override
            public void keyMayBeUsable() {
                events.add(name + " woken");
            }

            @Override
            public void waitOver() {
                events.add(name + " timed out");
            }
        };
    }

    @Test
    void aKeyThatCameBackJustBeforeTheWaiterEnteredWakesItAtOnce() {
        await("late", 10);
        channel.runPendingTasks();
        assertEquals(List.of("late woken"), events);
    }
}
