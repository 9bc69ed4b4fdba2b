package io.megallm.proxy.key;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every transition of contract §7's key lifecycle, on an injected clock: nothing sleeps. */
class KeyLifecycleTest {

    private static final ApiKey[] NONE = new ApiKey[0];

    private final AtomicLong nanos = new AtomicLong(5_000_000_000_000L);
    private final AtomicLong wall = new AtomicLong(1_800_000_000_000L);
    // Listeners run on whichever thread changes a state: the racing tests change them from many.
    private final List<String> changes = Collections.synchronizedList(new ArrayList<>());
    private KeyPool pool;
    private KeyLifecycle life;
    private KeySelector selector;
    private ApiKey a;
    private ApiKey b;

    @BeforeEach
    void setUp() {
        setUp(new KeyPolicy(60, 300, 600));
    }

    private void setUp(KeyPolicy policy) {
        pool = new KeyPool(KeyClock.of(nanos::get, wall::get), policy);
        pool.reload(List.of("sk-mega-aaaaaaaaaaaaaaaaaaaa0001", "sk-mega-bbbbbbbbbbbbbbbbbbbb0002"));
        life = pool.lifecycle();
        life.addListener((key, from, to) -> changes.add(key.masked() + " " + from.kind() + "->" + to.kind()));
        selector = new KeySelector(pool);
        a = pool.keys().get(0);
        b = pool.keys().get(1);
    }

    private void advanceSeconds(double s) {
        long n = (long) (s * 1e9);
        nanos.addAndGet(n);
        wall.addAndGet(n / 1_000_000);
    }

    private KeyState.Kind kind(ApiKey k) {
        return k.state().effectiveKind(pool.now());
    }

    // ---- 429: rest, adaptive without Retry-After ----

    @Test
    void a429WithRetryAfterRestsExactlyThatLongThenReturnsByItself() {
        life.limited(a, 429, 7);
        assertEquals(KeyState.Kind.COOLING_DOWN, kind(a));
        assertEquals(7, pool.cooldownRemainingSeconds(a));
        advanceSeconds(6.9);
        assertEquals(KeyState.Kind.COOLING_DOWN, kind(a));
        advanceSeconds(0.1);
        assertEquals(KeyState.Kind.AVAILABLE, kind(a));
        assertSame(a, selector.next(new ApiKey[] {b}, 1));
    }

    @Test
    void a429WithoutRetryAfterRestsOneSecondThenDoublesPerConsecutive429UpToKeyCooldown() {
        long[] expected = {1, 2, 4, 8, 16, 32, 60, 60};
        for (long seconds : expected) {
            life.limited(a, 429, -1);
            assertEquals(seconds, pool.cooldownRemainingSeconds(a));
            advanceSeconds(seconds);
            assertEquals(KeyState.Kind.AVAILABLE, kind(a), "back by itself after " + seconds + "s");
        }
    }

    @Test
    void the429sOfRequestsInFlightWhenTheRestBeganCountAsOne() {
        // A busy key has several requests in flight; their 429s arrive after the first one's.
        for (int i = 0; i < 25; i++) {
            life.limited(a, 429, -1);
        }
        assertEquals(1, pool.cooldownRemainingSeconds(a), "one 429 in a row, not 25");
        assertEquals(1, a.state().strikes());
        life.limited(a, 429, 30);
        assertEquals(30, pool.cooldownRemainingSeconds(a), "a later Retry-After still extends the rest");
        advanceSeconds(30);
        life.limited(a, 429, -1);
        assertEquals(2, pool.cooldownRemainingSeconds(a), "a 429 after the rest ended is the next in a row");
    }

    @Test
    void anAcceptedRequestResetsTheConsecutive429Count() {
        life.limited(a, 429, -1);
        advanceSeconds(1);
        life.limited(a, 429, -1);
        assertEquals(2, pool.cooldownRemainingSeconds(a));
        advanceSeconds(2);
        life.accepted(a, 200);
        assertEquals(KeyState.Kind.AVAILABLE, a.state().kind());
        assertEquals(0, a.state().strikes());
        life.limited(a, 429, -1);
        assertEquals(1, pool.cooldownRemainingSeconds(a), "the count started over");
    }

    @Test
    void twoOverlapping429sNeverShortenARest() {
        life.limited(a, 429, 30);
        life.limited(a, 429, 5);
        assertEquals(30, pool.cooldownRemainingSeconds(a));
    }

    @Test
    void keyCooldownZeroMeansNoRestWithoutRetryAfter() {
        setUp(new KeyPolicy(0, 300, 600));
        life.limited(a, 429, -1);
        assertEquals(KeyState.Kind.AVAILABLE, kind(a));
    }

    // ---- 401/402/403: failed, trial after KEY_RECHECK, doubling up to 24 h ----

    @Test
    void a401FailsTheKeyWithItsReasonAndATrialAfterKeyRecheck() {
        life.rejected(a, 401);
        assertEquals(KeyState.Kind.FAILED, a.state().kind());
        assertEquals("upstream 401", a.state().reason());
        assertEquals(300, pool.recheckInSeconds(a));
        assertNull(selector.next(new ApiKey[] {b}, 1), "a failed key is not in rotation");
        assertNull(selector.trial(NONE, 0), "no trial before KEY_RECHECK");
        advanceSeconds(299);
        assertNull(selector.trial(NONE, 0));
        advanceSeconds(1);
        assertSame(a, selector.trial(NONE, 0));
        assertTrue(a.state().onTrial());
        assertEquals(0, pool.recheckInSeconds(a));
        assertEquals(KeyState.Kind.FAILED, kind(a), "a key on trial still shows as failed");
    }

    @Test
    void aTrialAcceptedReturnsTheKeyToRotation() {
        life.rejected(a, 402);
        advanceSeconds(300);
        assertSame(a, selector.trial(NONE, 0));
        life.accepted(a, 200);
        assertEquals(KeyState.Kind.AVAILABLE, a.state().kind());
        assertNull(a.state().reason());
        assertEquals(-1, pool.recheckInSeconds(a));
    }

    @Test
    void anyAnswerButARejectionPassesATrial() {
        for (int status : new int[] {400, 404, 422, 500, 503}) {
            setUp();
            life.rejected(a, 401);
            advanceSeconds(300);
            assertSame(a, selector.trial(NONE, 0));
            if (status >= 500) {
                life.transientFailure(a, status);
            } else {
                life.accepted(a, status);
            }
            assertEquals(KeyState.Kind.AVAILABLE, a.state().kind(), "status " + status);
        }
    }

    @Test
    void aFailedTrialKeepsTheKeyFailedAndDoublesTheWaitUpToADay() {
        life.rejected(a, 401);
        long wait = 300;
        int[] rejections = {401, 402, 403, 429};
        for (int i = 0; i < 12; i++) {
            advanceSeconds(wait);
            assertSame(a, selector.trial(NONE, 0), "trial " + i + " due after " + wait + "s");
            int status = rejections[i % rejections.length];
            if (status == 429) {
                life.limited(a, status, -1);
            } else {
                life.rejected(a, status);
            }
            wait = Math.min(wait * 2, TimeUnit.DAYS.toSeconds(1));
            assertEquals(KeyState.Kind.FAILED, a.state().kind());
            assertFalse(a.state().onTrial());
            assertEquals(wait, pool.recheckInSeconds(a), "after trial " + i);
        }
        assertEquals(86_400, pool.recheckInSeconds(a));
    }

    @Test
    void aTrialWithNoAnswerIsHandedBackWithoutDoubling() {
        life.rejected(a, 401);
        advanceSeconds(300);
        assertSame(a, selector.trial(NONE, 0));
        life.transientFailure(a, 0);
        assertFalse(a.state().onTrial());
        assertEquals(0, pool.recheckInSeconds(a), "due again at once");
        assertEquals(300, TimeUnit.NANOSECONDS.toSeconds(a.state().recheckNanos()));
        assertSame(a, selector.trial(NONE, 0));
    }

    @Test
    void aTrialWhoseRequestVanishedLapsesAfterItsLease() {
        life.rejected(a, 401);
        advanceSeconds(300);
        assertSame(a, selector.trial(NONE, 0));
        assertNull(selector.trial(NONE, 0), "one trial at a time");
        advanceSeconds(599);
        assertNull(selector.trial(NONE, 0));
        advanceSeconds(1);
        assertSame(a, selector.trial(NONE, 0), "the claim lapsed");
    }

    @Test
    void aDueTrialTheGateHoldsBackStartsOnlyWhenItOpens() {
        java.util.concurrent.atomic.AtomicBoolean open = new java.util.concurrent.atomic.AtomicBoolean();
        List<ApiKey> asked = new ArrayList<>();
        life.setTrialGate(key -> {
            asked.add(key);
            return open.get();
        });
        life.rejected(a, 401);
        assertNull(selector.trial(NONE, 0), "not due yet");
        assertTrue(asked.isEmpty(), "the gate is asked only about a due trial");
        advanceSeconds(300);
        assertNull(selector.trial(NONE, 0), "due here, but another instance holds it");
        assertNull(selector.trial(NONE, 0));
        assertFalse(a.state().onTrial());
        assertEquals(List.of(a, a), asked, "asked again by every request while due: no scan is skipped");
        open.set(true);
        assertSame(a, selector.trial(NONE, 0));
        assertTrue(a.state().onTrial());
    }

    @Test
    void aTrialIsNotGivenToARequestThatAlreadyTriedTheKey() {
        life.rejected(a, 401);
        advanceSeconds(300);
        assertNull(selector.trial(new ApiKey[] {a}, 1));
    }

    @Test
    void keyRecheckZeroKeepsFailedKeysOutUntilAReset() {
        setUp(new KeyPolicy(60, 0, 600));
        life.rejected(a, 401);
        assertEquals(-1, pool.recheckInSeconds(a));
        advanceSeconds(TimeUnit.DAYS.toSeconds(30));
        assertNull(selector.trial(NONE, 0));
        assertEquals(KeyState.Kind.FAILED, kind(a));
        assertEquals(1, pool.resetFailed().reset());
        assertEquals(KeyState.Kind.AVAILABLE, kind(a));
    }

    /**
     * Found by KeyLifecycleModelTest: a 403 that the relay does not blame yet (it reports it as
     * not the key's fault until another key proves it) reached a key on trial, from a request
     * sent with the key before it failed, and passed the trial: "passed its trial (upstream
     * 403): back in rotation". A refusal never passes a trial (contract §7).
     */
    @Test
    void aRefusalReportedAsNotTheKeysFaultNeverPassesATrial() {
        life.rejected(a, 401);
        advanceSeconds(300);
        assertSame(a, selector.trial(NONE, 0));
        pool.recordTransient(a, 403);
        assertEquals(KeyState.Kind.FAILED, a.state().kind());
    }

    @Test
    void anAnswerToARequestSentBeforeTheFailureDoesNotHealTheKey() {
        life.rejected(a, 401);
        life.accepted(a, 200);
        assertEquals(KeyState.Kind.FAILED, a.state().kind());
    }

    @Test
    void a429OnAFailedKeyThatIsNotOnTrialChangesNothing() {
        life.rejected(a, 401);
        life.limited(a, 429, 5);
        assertEquals(KeyState.Kind.FAILED, a.state().kind());
        assertEquals(300, pool.recheckInSeconds(a));
    }

    @Test
    void resetReturnsFailedAndCoolingKeysAndClearsThe429Count() {
        life.rejected(a, 401);
        life.limited(b, 429, -1);
        life.limited(b, 429, -1);
        assertEquals(2, pool.resetFailed().reset());
        assertEquals(KeyState.AVAILABLE, a.state());
        assertEquals(KeyState.AVAILABLE, b.state());
    }

    @Test
    void everyChangeReachesTheListeners() {
        life.limited(a, 429, 1);
        life.rejected(b, 401);
        advanceSeconds(300);
        selector.trial(NONE, 0);
        life.accepted(b, 200);
        assertEquals(List.of("sk-mega-…0001 AVAILABLE->COOLING_DOWN", "sk-mega-…0002 AVAILABLE->FAILED",
                "sk-mega-…0002 FAILED->FAILED", "sk-mega-…0002 FAILED->AVAILABLE"), changes);
    }

    @Test
    void aTrialDueSoonerThanTheLastScanSawIsStillFound() {
        life.rejected(a, 401);
        advanceSeconds(100);
        assertNull(selector.trial(NONE, 0), "the scan learns: nothing before 200 s from now");
        life.rejected(b, 401);
        life.limited(b, 429, 1); // not on trial: changes nothing
        assertNull(selector.trial(NONE, 0));
        advanceSeconds(200);
        assertSame(a, selector.trial(NONE, 0));
        assertNull(selector.trial(NONE, 0), "b is due in 100 s");
        pool.resetFailed();
        life.rejected(b, 401);
        // b was reset and failed again: due in 300 s, earlier than nothing, later than now.
        advanceSeconds(300);
        assertSame(b, selector.trial(NONE, 0));
    }

    @Test
    void trialsAreCountedByHowTheyEnded() {
        life.rejected(a, 401);
        advanceSeconds(300);
        selector.trial(NONE, 0);
        life.transientFailure(a, 0);
        selector.trial(NONE, 0);
        life.rejected(a, 403);
        advanceSeconds(600);
        selector.trial(NONE, 0);
        life.accepted(a, 200);
        assertEquals(1, life.trials(KeyLifecycle.TrialOutcome.NO_ANSWER));
        assertEquals(1, life.trials(KeyLifecycle.TrialOutcome.FAILED));
        assertEquals(1, life.trials(KeyLifecycle.TrialOutcome.PASSED));
    }

    // ---- many threads racing for one key's trial ----

    @Test
    void manyThreadsRacingForOneKeysTrialGetExactlyOneTrial() throws Exception {
        for (int round = 0; round < 50; round++) {
            setUp();
            life.rejected(a, 401);
            life.rejected(b, 401);
            advanceSeconds(300);
            int threads = 16;
            CountDownLatch ready = new CountDownLatch(threads);
            CountDownLatch go = new CountDownLatch(1);
            AtomicInteger trialsOfA = new AtomicInteger();
            AtomicInteger trialsOfB = new AtomicInteger();
            List<Thread> all = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                Thread th = new Thread(() -> {
                    ready.countDown();
                    try {
                        go.await();
                    } catch (InterruptedException e) {
                        return;
                    }
                    ApiKey k = selector.trial(NONE, 0);
                    if (k == a) {
                        trialsOfA.incrementAndGet();
                    } else if (k == b) {
                        trialsOfB.incrementAndGet();
                    }
                });
                th.start();
                all.add(th);
            }
            ready.await();
            go.countDown();
            for (Thread th : all) {
                th.join();
            }
            assertEquals(1, trialsOfA.get(), "round " + round);
            assertEquals(1, trialsOfB.get(), "round " + round);
        }
    }

    @Test
    void aListenerThatThrowsTakesTheChangeFromNobody() {
        List<String> after = new ArrayList<>();
        life.addListener((key, from, to) -> {
            throw new IllegalStateException("listener bug");
        });
        life.addListener((key, from, to) -> after.add(key.masked() + " " + to.kind()));
        life.rejected(a, 401);
        life.rejected(b, 401);
        advanceSeconds(300);

        ApiKey trial = selector.trial(NONE, 0);

        assertEquals(a, trial, "the caller still gets the key whose trial it won");
        assertTrue(trial.state().onTrial());
        assertEquals(List.of(a.masked() + " FAILED", b.masked() + " FAILED", a.masked() + " FAILED"), after,
                "the listeners after the failing one hear every change");
    }

    // ---- state across a restart ----

    @Test
    void savedStatesCarryNoKeyOnlyItsSha256AndComeBackOnANewPool() {
        life.rejected(a, 401);
        advanceSeconds(300);
        selector.trial(NONE, 0);
        life.rejected(a, 401); // next trial in 600 s
        life.limited(b, 429, -1);
        advanceSeconds(0.5);
        List<SavedKeyState> saved = pool.savedStates();
        for (SavedKeyState s : saved) {
            assertEquals(64, s.id().length());
            assertFalse(s.toString().contains("aaaaaaaaaaaa"));
        }

        // A new process: its monotonic clock starts elsewhere, the wall clock has moved on 10 s.
        nanos.set(42L);
        advanceSeconds(10);
        KeyPool next = new KeyPool(KeyClock.of(nanos::get, wall::get), new KeyPolicy(60, 300, 600));
        next.reload(List.of("sk-mega-bbbbbbbbbbbbbbbbbbbb0002", "sk-mega-aaaaaaaaaaaaaaaaaaaa0001",
                "sk-mega-cccccccccccccccccccc0003"));
        assertEquals(2, next.restore(saved));
        ApiKey a2 = next.keys().get(1);
        ApiKey b2 = next.keys().get(0);
        assertEquals(KeyState.Kind.FAILED, a2.state().kind());
        assertEquals("upstream 401", a2.state().reason());
        assertEquals(590, next.recheckInSeconds(a2));
        assertEquals(600, TimeUnit.NANOSECONDS.toSeconds(a2.state().recheckNanos()));
        assertEquals(KeyState.Kind.AVAILABLE, b2.state().effectiveKind(next.now()), "its 1 s rest is over");
        assertEquals(1, b2.state().strikes(), "the 429 count survives");
        assertEquals(KeyState.AVAILABLE, next.keys().get(2).state());
    }

    @Test
    void aRestoredFailedKeyWithRecheckNowOffStaysOutForGood() {
        life.rejected(a, 401);
        List<SavedKeyState> saved = pool.savedStates();
        KeyPool next = new KeyPool(KeyClock.of(nanos::get, wall::get), new KeyPolicy(60, 0, 600));
        next.reload(List.of("sk-mega-aaaaaaaaaaaaaaaaaaaa0001"));
        next.restore(saved);
        assertEquals(KeyState.Kind.FAILED, next.keys().get(0).state().kind());
        assertEquals(-1, next.recheckInSeconds(next.keys().get(0)));
    }

    @Test
    void aRunningTrialIsSavedAsDue() {
        life.rejected(a, 401);
        advanceSeconds(300);
        assertNotNull(selector.trial(NONE, 0));
        SavedKeyState s = pool.savedStates().get(0);
        assertEquals(wall.get(), s.untilEpochMillis());
        assertEquals(300, s.recheckSeconds());
    }

    @Test
    void aSavedOrSharedStateIsHeldToTheBoundsOfALiveOne() {
        long forever = Long.MAX_VALUE;
        SavedKeyState resting = new SavedKeyState(a.id(), KeyState.Kind.COOLING_DOWN, "upstream 429\n\u001b[31mforged",
                forever, Integer.MAX_VALUE, 0);
        SavedKeyState failed = new SavedKeyState(b.id(), KeyState.Kind.FAILED, "x".repeat(5000), forever, -7, forever);
        assertEquals(2, pool.restore(List.of(resting, failed)));
        assertEquals(TimeUnit.DAYS.toSeconds(1), pool.cooldownRemainingSeconds(a), "a rest ends within a day");
        assertEquals(62, a.state().strikes());
        assertEquals("upstream 429__[31mforged", a.state().reason(), "one printable line");
        assertEquals(TimeUnit.DAYS.toSeconds(1), pool.recheckInSeconds(b), "the next trial within a day");
        assertEquals(0, b.state().strikes());
        assertEquals(200, b.state().reason().length());

        assertTrue(pool.adopt(new SavedKeyState(a.id(), KeyState.Kind.COOLING_DOWN, "shared", forever, 1, 0), "from Redis"));
        assertEquals("shared", a.state().reason());
        assertEquals(TimeUnit.DAYS.toSeconds(1), pool.cooldownRemainingSeconds(a), "so does one another instance shared");
    }

    /** An operator's KEY_COOLDOWN over a day is a rest a live key can get: a restored one may too. */
    @Test
    void aRestoredRestMayLastAsLongAsAKeyCooldownOverADay() {
        long cooldown = TimeUnit.DAYS.toSeconds(2);
        setUp(new KeyPolicy(cooldown, 300, 600));
        SavedKeyState resting = new SavedKeyState(a.id(), KeyState.Kind.COOLING_DOWN, "upstream 429",
                Long.MAX_VALUE, 62, 0);
        assertEquals(1, pool.restore(List.of(resting)));
        assertEquals(cooldown, pool.cooldownRemainingSeconds(a));
    }

    /**
     * KEY_COOLDOWN is any non-negative number; one past what the nanosecond clock spans (~292
     * years) must still rest a key, not overflow its deadline into the past. A consecutive-429
     * count that reaches it comes back from the state file or Redis (kept up to 62).
     */
    @Test
    void aHugeKeyCooldownStillRestsTheKey() {
        setUp(new KeyPolicy(TimeUnit.DAYS.toSeconds(365) * 400, 300, 600));
        assertEquals(1, pool.restore(List.of(new SavedKeyState(a.id(), KeyState.Kind.AVAILABLE, null, 0, 40, 0))));
        life.limited(a, 429, -1);
        assertEquals(KeyState.Kind.COOLING_DOWN, kind(a), "the 41st 429 in a row gave the key no rest at all");
        assertTrue(pool.cooldownRemainingSeconds(a) > 0);
        assertNull(selector.next(new ApiKey[] {b}, 1), "the resting key is not handed out");
    }

    // ---- a state adopted from another instance (§14) ----

    @Test
    void anAdoptedStateAppliesOnceIsHeardByListenersAndRecoveryComesBackToo() {
        SavedKeyState failed = new SavedKeyState(a.id(), KeyState.Kind.FAILED, "upstream 401", wall.get() + 300_000, 0, 300);
        assertTrue(pool.adopt(failed, "as another instance found"));
        assertEquals(KeyState.Kind.FAILED, a.state().kind());
        assertEquals(300, pool.recheckInSeconds(a));
        assertEquals(List.of(a.masked() + " AVAILABLE->FAILED"), changes);
        assertFalse(pool.adopt(failed, "again"), "the same state twice is no change");
        assertFalse(pool.adopt(new SavedKeyState("0".repeat(64), KeyState.Kind.FAILED, "x", 0, 0, 0), "x"),
                "an id this pool does not hold");

        assertTrue(pool.adopt(new SavedKeyState(a.id(), KeyState.Kind.AVAILABLE, null, 0, 0, 0), "recovered"));
        assertEquals(KeyState.Kind.AVAILABLE, a.state().kind());

        assertTrue(pool.adopt(new SavedKeyState(b.id(), KeyState.Kind.COOLING_DOWN, "upstream 429", wall.get() + 30_000, 2, 0),
                "rest"));
        assertEquals(30, pool.cooldownRemainingSeconds(b));
        assertEquals(2, b.state().strikes());
    }

    @Test
    void aTrialRunningHereIsNotOverwrittenByAFailureFromElsewhere() {
        life.rejected(a, 401);
        advanceSeconds(300);
        assertNotNull(selector.trial(NONE, 0));
        assertFalse(pool.adopt(new SavedKeyState(a.id(), KeyState.Kind.FAILED, "upstream 401", wall.get() + 5_000, 0, 300),
                "lease elsewhere"));
        assertTrue(a.state().onTrial());
        life.accepted(a, 200);
        assertEquals(KeyState.Kind.AVAILABLE, a.state().kind(), "the trial's own answer decides");
    }
}
