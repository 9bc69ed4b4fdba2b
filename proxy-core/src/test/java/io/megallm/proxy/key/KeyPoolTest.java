package io.megallm.proxy.key;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

class KeyPoolTest {

    private static final String A = "sk-mega-aaaaaaaaaaaaaaaaaaaaaaaa1111";
    private static final String B = "sk-mega-bbbbbbbbbbbbbbbbbbbbbbbb2222";
    private static final String C = "sk-mega-cccccccccccccccccccccccc3333";
    private static final String D = "sk-mega-dddddddddddddddddddddddd4444";

    private final AtomicLong clock = new AtomicLong(1_000_000_000_000L);
    private KeyPool pool;

    @BeforeEach
    void setUp() {
        pool = new KeyPool(clock::get);
    }

    private void advanceMillis(long millis) {
        clock.addAndGet(TimeUnit.MILLISECONDS.toNanos(millis));
    }

    private ApiKey key(int index) {
        return pool.keys().get(index);
    }

    // ---- reload ----

    @Test
    void firstReloadAddsEveryKeyInOrder() {
        ReloadResult r = pool.reload(List.of(A, B, C));

        assertEquals(new ReloadResult(3, 3, 0, 0), r);
        assertEquals(3, pool.keys().size());
        assertTrue(key(0).sameSecret(A));
        assertTrue(key(1).sameSecret(B));
        assertTrue(key(2).sameSecret(C));
        pool.keys().forEach(k -> assertEquals(KeyState.Kind.AVAILABLE, k.state().kind()));
    }

    @Test
    void reloadKeepsStateAndCountersOfKeptKeys() {
        pool.reload(List.of(A, B, C));
        ApiKey a = key(0);
        ApiKey c = key(2);
        pool.recordAttempt(a);
        pool.recordAttempt(a);
        pool.markFailed(a, 401);
        pool.recordAttempt(c);
        pool.coolDown(c, 429, 60);

        ReloadResult r = pool.reload(List.of(D, C, A));

        assertEquals(new ReloadResult(3, 1, 1, 2), r);
        assertTrue(key(0).sameSecret(D));
        assertSame(c, key(1));
        assertSame(a, key(2));
        assertEquals(KeyState.Kind.FAILED, a.state().kind());
        assertEquals("upstream 401", a.state().reason());
        assertEquals(2, a.requests());
        assertEquals(1, a.failures());
        assertEquals(401, a.lastStatus());
        assertEquals(KeyState.Kind.COOLING_DOWN, c.state().kind());
        assertEquals(1, c.requests());
        assertEquals(60, pool.cooldownRemainingSeconds(c));
        assertEquals(KeyState.Kind.AVAILABLE, key(0).state().kind());
        assertEquals(0, key(0).requests());
    }

    @Test
    void reloadToEmptyRemovesEverything() {
        pool.reload(List.of(A, B));

        assertEquals(new ReloadResult(0, 0, 2, 0), pool.reload(List.of()));
        assertTrue(pool.keys().isEmpty());
        assertEquals(new KeyStats(0, 0, 0, 0), pool.stats());
    }

    @Test
    void removedKeyComesBackFresh() {
        pool.reload(List.of(A, B));
        ApiKey a = key(0);
        pool.markFailed(a, 403);
        pool.reload(List.of(B));

        assertEquals(new ReloadResult(2, 1, 0, 1), pool.reload(List.of(A, B)));
        assertNotSame(a, key(0));
        assertEquals(KeyState.Kind.AVAILABLE, key(0).state().kind());
        assertEquals(0, key(0).failures());
    }

    @Test
    void identicalReloadKeepsAll() {
        pool.reload(List.of(A, B, C));

        assertEquals(new ReloadResult(3, 0, 0, 3), pool.reload(List.of(A, B, C)));
    }

    // ---- failed ----

    @Test
    void markFailedTakesKeyOutOfRotationWithReason() {
        pool.reload(List.of(A, B));
        ApiKey a = key(0);

        pool.markFailed(a, 401);

        assertEquals(KeyState.Kind.FAILED, a.state().kind());
        assertEquals("upstream 401", a.state().reason());
        assertFalse(a.state().usableAt(pool.now()));
        assertEquals(401, a.lastStatus());
        assertEquals(1, a.failures());
        advanceMillis(TimeUnit.DAYS.toMillis(30));
        assertFalse(a.state().usableAt(pool.now()), "a failed key never returns by itself");
        assertEquals(KeyState.Kind.FAILED, a.state().effectiveKind(pool.now()));
    }

    @Test
    void markFailedReasonNamesTheStatus() {
        pool.reload(List.of(A, B));
        pool.markFailed(key(0), 403);
        pool.markFailed(key(1), 402);

        assertEquals("upstream 403", key(0).state().reason());
        assertEquals("upstream 402", key(1).state().reason());
    }

    @Test
    void markFailedTwiceCountsBothFailures() {
        pool.reload(List.of(A));
        pool.markFailed(key(0), 401);
        pool.markFailed(key(0), 403);

        assertEquals(KeyState.Kind.FAILED, key(0).state().kind());
        assertEquals(2, key(0).failures());
        assertEquals(403, key(0).lastStatus());
    }

    @Test
    void markFailedOverridesCooling() {
        pool.reload(List.of(A));
        pool.coolDown(key(0), 429, 60);
        pool.markFailed(key(0), 401);

        assertEquals(KeyState.Kind.FAILED, key(0).state().kind());
        assertEquals(-1, pool.cooldownRemainingSeconds(key(0)));
    }

    @Test
    void availableKeyHasNoReason() {
        pool.reload(List.of(A));

        assertNull(key(0).state().reason());
    }

    // ---- cooling ----

    @Test
    void coolDownRestsThenReturnsWhenTheClockPasses() {
        pool.reload(List.of(A));
        ApiKey a = key(0);

        pool.coolDown(a, 429, 60);

        assertEquals(KeyState.Kind.COOLING_DOWN, a.state().kind());
        assertEquals("upstream 429", a.state().reason());
        assertEquals(429, a.lastStatus());
        assertEquals(1, a.failures());
        assertFalse(a.state().usableAt(pool.now()));
        assertEquals(new KeyStats(1, 0, 0, 1), pool.stats());

        advanceMillis(59_999);
        assertFalse(a.state().usableAt(pool.now()));
        assertEquals(KeyState.Kind.COOLING_DOWN, a.state().effectiveKind(pool.now()));

        advanceMillis(1);
        assertTrue(a.state().usableAt(pool.now()));
        assertEquals(KeyState.Kind.AVAILABLE, a.state().effectiveKind(pool.now()));
        assertEquals(new KeyStats(1, 1, 0, 0), pool.stats());
        assertSame(a, new KeySelector(pool).next(new ApiKey[0], 0));
    }

    @Test
    void successAfterCooldownFlipsKeyBack() {
        pool.reload(List.of(A));
        ApiKey a = key(0);
        pool.coolDown(a, 429, 5);

        pool.recordSuccess(a, 200);
        assertEquals(KeyState.Kind.COOLING_DOWN, a.state().kind(), "too early: still cooling");

        advanceMillis(5_000);
        pool.recordSuccess(a, 200);
        assertEquals(KeyState.Kind.AVAILABLE, a.state().kind());
        assertEquals(200, a.lastStatus());
        assertEquals(1, a.failures());
    }

    @Test
    void laterDeadlineWinsWhenShorterComesSecond() {
        pool.reload(List.of(A));
        ApiKey a = key(0);

        pool.coolDown(a, 429, 60);
        pool.coolDown(a, 429, 10);

        assertEquals(60, pool.cooldownRemainingSeconds(a));
        advanceMillis(10_000);
        assertFalse(a.state().usableAt(pool.now()));
        assertEquals(50, pool.cooldownRemainingSeconds(a));
    }

    @Test
    void laterDeadlineWinsWhenLongerComesSecond() {
        pool.reload(List.of(A));
        ApiKey a = key(0);

        pool.coolDown(a, 429, 10);
        pool.coolDown(a, 429, 60);

        assertEquals(60, pool.cooldownRemainingSeconds(a));
        assertEquals(2, a.failures());
    }

    @Test
    void coolDownDoesNotReviveAFailedKey() {
        pool.reload(List.of(A));
        ApiKey a = key(0);
        pool.markFailed(a, 401);

        pool.coolDown(a, 429, 1);
        advanceMillis(2_000);

        assertEquals(KeyState.Kind.FAILED, a.state().kind());
        assertEquals("upstream 401", a.state().reason());
    }

    @Test
    void negativeCooldownIsImmediatelyOver() {
        pool.reload(List.of(A));
        pool.coolDown(key(0), 429, -5);

        assertTrue(key(0).state().usableAt(pool.now()));
    }

    @Test
    void absurdCooldownIsCappedAtADayWithoutOverflow() {
        pool.reload(List.of(A));
        ApiKey a = key(0);

        pool.coolDown(a, 429, Long.MAX_VALUE);

        assertFalse(a.state().usableAt(pool.now()));
        assertEquals(TimeUnit.DAYS.toSeconds(1), pool.cooldownRemainingSeconds(a));
    }

    @Test
    void clockArithmeticSurvivesNanoTimeWrapAround() {
        clock.set(Long.MAX_VALUE - TimeUnit.SECONDS.toNanos(5));
        pool.reload(List.of(A));
        ApiKey a = key(0);

        pool.coolDown(a, 429, 60);
        assertFalse(a.state().usableAt(pool.now()));
        assertEquals(60, pool.secondsUntilNextAvailable());

        advanceMillis(30_000); // the clock is now past Long.MAX_VALUE, i.e. negative
        assertTrue(pool.now() < 0);
        assertFalse(a.state().usableAt(pool.now()));
        assertEquals(30, pool.cooldownRemainingSeconds(a));

        advanceMillis(30_000);
        assertTrue(a.state().usableAt(pool.now()));
    }

    // ---- reset ----

    @Test
    void resetFailedReturnsFailedAndCoolingKeysAndCounts() {
        pool.reload(List.of(A, B, C, D));
        pool.markFailed(key(0), 401);
        pool.coolDown(key(1), 429, 60);
        pool.markFailed(key(3), 402);

        ResetResult r = pool.resetFailed();

        assertEquals(new ResetResult(3, 4, 4), r);
        pool.keys().forEach(k -> {
            assertEquals(KeyState.Kind.AVAILABLE, k.state().kind());
            assertNull(k.state().reason());
        });
        assertEquals(new ResetResult(0, 4, 4), pool.resetFailed());
    }

    @Test
    void resetKeepsCounters() {
        pool.reload(List.of(A));
        pool.recordAttempt(key(0));
        pool.markFailed(key(0), 401);

        pool.resetFailed();

        assertEquals(1, key(0).requests());
        assertEquals(1, key(0).failures());
    }

    // ---- stats ----

    @Test
    void statsCountsEachKind() {
        pool.reload(List.of(A, B, C, D));
        pool.markFailed(key(0), 401);
        pool.coolDown(key(1), 429, 30);
        pool.coolDown(key(2), 429, 90);

        assertEquals(new KeyStats(4, 1, 1, 2), pool.stats());

        advanceMillis(30_000);
        assertEquals(new KeyStats(4, 2, 1, 1), pool.stats(), "an expired cooldown counts as available");
    }

    @Test
    void statsOfEmptyPool() {
        assertEquals(new KeyStats(0, 0, 0, 0), pool.stats());
    }

    // ---- secondsUntilNextAvailable ----

    @Test
    void secondsUntilNextAvailableIsMinusOneWhenNothingCools() {
        assertEquals(-1, pool.secondsUntilNextAvailable());

        pool.reload(List.of(A, B));
        assertEquals(-1, pool.secondsUntilNextAvailable());

        pool.markFailed(key(0), 401);
        pool.markFailed(key(1), 403);
        assertEquals(-1, pool.secondsUntilNextAvailable(), "failed keys never come back by themselves");
    }

    @Test
    void secondsUntilNextAvailableIsTheEarliestCoolingKeyRoundedUp() {
        pool.reload(List.of(A, B, C));
        pool.coolDown(key(0), 429, 60);
        pool.coolDown(key(1), 429, 10);
        pool.markFailed(key(2), 401);

        assertEquals(10, pool.secondsUntilNextAvailable());

        advanceMillis(2_300);
        assertEquals(8, pool.secondsUntilNextAvailable(), "7.7 s rounds up");

        advanceMillis(7_000);
        assertEquals(1, pool.secondsUntilNextAvailable(), "0.7 s rounds up to 1");

        advanceMillis(699);
        assertEquals(1, pool.secondsUntilNextAvailable(), "1 ms left still says 1");

        advanceMillis(1);
        assertEquals(1, pool.secondsUntilNextAvailable(), "never below 1 while a key is cooling");
    }

    @Test
    void secondsUntilNextAvailableRoundsUpEvenANanosecond() {
        pool.reload(List.of(A));
        pool.coolDown(key(0), 429, 3);
        clock.addAndGet(TimeUnit.SECONDS.toNanos(2) - 1);

        assertEquals(2, pool.secondsUntilNextAvailable());
    }

    // ---- cooldownRemainingSeconds ----

    @Test
    void cooldownRemainingSeconds() {
        pool.reload(List.of(A, B, C));
        ApiKey cooling = key(0);
        pool.coolDown(cooling, 429, 30);
        pool.markFailed(key(1), 401);

        assertEquals(30, pool.cooldownRemainingSeconds(cooling));
        assertEquals(-1, pool.cooldownRemainingSeconds(key(1)), "failed, not cooling");
        assertEquals(-1, pool.cooldownRemainingSeconds(key(2)), "available");

        advanceMillis(100);
        assertEquals(30, pool.cooldownRemainingSeconds(cooling), "29.9 s rounds up");

        advanceMillis(28_900);
        assertEquals(1, pool.cooldownRemainingSeconds(cooling));

        advanceMillis(999);
        assertEquals(1, pool.cooldownRemainingSeconds(cooling));

        advanceMillis(1);
        assertEquals(-1, pool.cooldownRemainingSeconds(cooling), "time is up: not cooling any more");
    }

    // ---- counters ----

    @Test
    void countersRecordAttemptsAndStatuses() {
        pool.reload(List.of(A));
        ApiKey a = key(0);

        pool.recordAttempt(a);
        pool.recordAttempt(a);
        pool.recordAttempt(a);
        pool.recordTransient(a, 503);
        assertEquals(503, a.lastStatus());
        pool.recordSuccess(a, 200);

        assertEquals(3, a.requests());
        assertEquals(0, a.failures(), "transient failures do not blame the key");
        assertEquals(200, a.lastStatus());
        assertEquals(KeyState.Kind.AVAILABLE, a.state().kind());
    }

    // ---- masking ----

    @Test
    void maskShowsFirstEightAndLastFour() {
        assertEquals("sk-mega-…wxyz", ApiKey.mask("sk-mega-abcdefghijklmnopqrstuvwxyz"));
        assertEquals("12345678…cdef", ApiKey.mask("1234567890abcdef"));
    }

    @Test
    void toStringAndMaskedAreTheMaskedForm() {
        pool.reload(List.of("sk-mega-abcdefghijklmnopqrstuvwxyz"));
        ApiKey k = key(0);

        assertEquals("sk-mega-…wxyz", k.masked());
        assertEquals("sk-mega-…wxyz", k.toString());
        assertEquals("Bearer sk-mega-abcdefghijklmnopqrstuvwxyz", k.authorization().toString());
    }

    @Test
    void noTextualFormRevealsTheSecret() {
        List<String> secrets = List.of(
                "sk-mega-abcdefghijklmnopqrstuvwxyz",
                "sk-mega-0123456789abcdef0123456789abcdef0123456789abcdef",
                "1234567890abcdef",
                "123456789012345",
                "abcdefghijkl",
                "12345678",
                "abcdefg",
                "k",
                "sk-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        pool.reload(secrets);

        assertEquals(secrets.size(), pool.keys().size());
        for (ApiKey k : pool.keys()) {
            String secret = k.secret();
            assertFalse(k.toString().contains(secret), () -> "toString reveals " + k.masked());
            assertFalse(k.masked().contains(secret), () -> "masked reveals " + k.masked());
            assertFalse(ApiKey.mask(secret).contains(secret));
            assertFalse(String.valueOf(k).contains(secret));
            assertTrue(k.masked().contains("…"));
        }
    }
}
