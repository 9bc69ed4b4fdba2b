package io.megallm.proxy.relay;

import io.megallm.proxy.relay.FailoverPolicy.Verdict;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FailoverPolicyTest {

    @ParameterizedTest
    @ValueSource(ints = {401, 402})
    void rejectedKeyFails(int status) {
        assertEquals(Verdict.KEY_FAILED, FailoverPolicy.classify(status));
    }

    @Test
    void forbiddenIsAmbiguousUntilAnotherKeyAccepts() {
        assertEquals(Verdict.KEY_FORBIDDEN, FailoverPolicy.classify(403));
    }

    @Test
    void rateLimitedKeyCools() {
        assertEquals(Verdict.KEY_COOLING, FailoverPolicy.classify(429));
    }

    @ParameterizedTest
    @ValueSource(ints = {500, 502, 503, 504})
    void serverTroubleIsTransient(int status) {
        assertEquals(Verdict.TRANSIENT, FailoverPolicy.classify(status));
    }

    @ParameterizedTest
    @ValueSource(ints = {200, 201, 204, 301, 400, 404, 405, 408, 409, 413, 422, 501, 505})
    void everythingElseIsRelayedAsIs(int status) {
        assertEquals(Verdict.RELAY, FailoverPolicy.classify(status));
    }

    @Test
    void backoffDoublesFromOneHundredMillis() {
        assertEquals(100, FailoverPolicy.backoffMillis(1));
        assertEquals(200, FailoverPolicy.backoffMillis(2));
        assertEquals(400, FailoverPolicy.backoffMillis(3));
        assertEquals(800, FailoverPolicy.backoffMillis(4));
        assertEquals(1600, FailoverPolicy.backoffMillis(5));
    }

    @Test
    void backoffIsCappedAtTwoSeconds() {
        assertEquals(2000, FailoverPolicy.backoffMillis(6));
        assertEquals(2000, FailoverPolicy.backoffMillis(7));
        assertEquals(2000, FailoverPolicy.backoffMillis(64));
        assertEquals(2000, FailoverPolicy.backoffMillis(Integer.MAX_VALUE));
    }

    @Test
    void backoffNeverShrinksAndStaysPositive() {
        long previous = 0;
        for (int retry = 1; retry <= 100; retry++) {
            long b = FailoverPolicy.backoffMillis(retry);
            assertTrue(b >= previous, "retry " + retry);
            assertTrue(b > 0 && b <= 2000, "retry " + retry);
            previous = b;
        }
    }

    @Test
    void backoffForOutOfRangeRetryIsTheFirstStep() {
        assertEquals(100, FailoverPolicy.backoffMillis(0));
        assertEquals(100, FailoverPolicy.backoffMillis(-3));
    }
}
