package io.megallm.proxy.server.relay;

import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.key.KeyClock;
import io.megallm.proxy.key.KeyState;
import io.megallm.proxy.server.testing.ManualKeyClock;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.OutputStream;
import java.net.Socket;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static io.megallm.proxy.server.testing.KeyAsserts.assertKey;
import static io.megallm.proxy.server.testing.KeyAsserts.assertKeys;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Contract §7's key lifecycle over real sockets, against the mock upstream: healing by trial,
 * the adaptive rest, waiting for a key, the retry budget and affinity. Where time must pass for
 * the pool, the test moves an injected clock; where a request waits, it waits for real events.
 */
class KeyLifecycleRelayTest {

    private static final String OK = "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\"}";

    private static ApiKey key(ProxyUnderTest p, int i) {
        String masked = ApiKey.mask(p.keys.get(i));
        return p.server.keys().keys().stream().filter(k -> k.masked().equals(masked)).findFirst().orElseThrow();
    }

    private static long keysSeen(ProxyUnderTest p, int i) {
        return p.upstream.all().stream().filter(r -> p.keys.get(i).equals(r.key())).count();
    }

    /** The value of one sample of /metrics, e.g. {@code megallm_key_waits_total{outcome="served"}}. */
    private static double metric(ProxyUnderTest p, String sample) throws Exception {
        for (String line : p.get("/metrics").body().split("\n")) {
            if (line.startsWith(sample + " ")) {
                return Double.parseDouble(line.substring(sample.length() + 1).trim());
            }
        }
        throw new AssertionError("no sample " + sample);
    }

    /** Answers {@code first} to the first request, then 200. */
    private static MockUpstream.Behavior onceThenOk(MockUpstream.Behavior first) {
        AtomicInteger calls = new AtomicInteger();
        return (ctx, req) -> (calls.getAndIncrement() == 0 ? first : MockUpstream.json(200, OK)).respond(ctx, req);
    }

    @Test
    void aKeyThatFailedOnceHealsByTrialWithoutAReset() throws Exception {
        ManualKeyClock clock = new ManualKeyClock();
        try (ProxyUnderTest p = ProxyUnderTest.start(ProxyUnderTest.keys(2), Map.of(), clock, null)) {
            p.upstream.on(p.keys.get(0), onceThenOk(MockUpstream.json(401, "{}")));
            assertEquals(200, p.chat().statusCode());
            assertEquals(KeyState.Kind.FAILED, key(p, 0).state().kind());

            clock.advanceSeconds(300);
            assertEquals(200, p.chat().statusCode());
            assertEquals(KeyState.Kind.AVAILABLE, key(p, 0).state().kind(), "back in rotation by its trial");
            assertEquals(2, keysSeen(p, 0), "the 401, then the trial");
            assertEquals(1, metric(p, "megallm_key_trials_total{outcome=\"passed\"}"));
            assertTrue(p.logLines().stream().anyMatch(l -> l.contains("key " + ApiKey.mask(p.keys.get(0))
                    + " passed its trial")), p.logLines().toString());
        }
    }

    @Test
    void aDeadKeyIsTriedAt1x2x4xKeyRecheckWhileEveryClientRequestSucceeds() throws Exception {
        ManualKeyClock clock = new ManualKeyClock();
        try (ProxyUnderTest p = ProxyUnderTest.start(ProxyUnderTest.keys(2), Map.of("KEY_RECHECK", "100"), clock, null)) {
            p.upstream.on(p.keys.get(0), MockUpstream.json(401, "{\"error\":{\"message\":\"dead\"}}"));
            assertEquals(200, p.chat().statusCode());
            long[] waits = {100, 200, 400, 800};
            for (int i = 0; i < waits.length; i++) {
                clock.advanceSeconds(waits[i] - 1);
                assertEquals(200, p.chat().statusCode());
                assertEquals(1 + i, keysSeen(p, 0), "no trial before " + waits[i] + " s");
                clock.advanceSeconds(1);
                HttpResponse<String> r = p.chat();
                assertEquals(200, r.statusCode(), "the trial's failure is invisible");
                assertEquals(OK, r.body());
                assertEquals(2 + i, keysSeen(p, 0), "trial " + (i + 1) + " at " + waits[i] + " s");
                assertEquals(waits[i] * 2, p.server.keys().recheckInSeconds(key(p, 0)));
            }
            assertEquals(4, metric(p, "megallm_key_trials_total{outcome=\"failed\"}"));
            assertEquals(1, metric(p, "megallm_key_switches_total"), "only the first 401 was a counted move");
        }
    }

    @Test
    void atMostOneTrialKeyPerRequestAndItsFailureCostsNoMove() throws Exception {
        ManualKeyClock clock = new ManualKeyClock();
        try (ProxyUnderTest p = ProxyUnderTest.start(ProxyUnderTest.keys(3), Map.of("MAX_KEY_RETRIES", "1"), clock,
                null)) {
            p.upstream.on(p.keys.get(0), MockUpstream.json(401, "{}"));
            p.upstream.on(p.keys.get(1), MockUpstream.json(403, "{}"));
            // Both failed at the same moment (as a 401 and a confirmed 403 would leave them).
            p.server.keys().markFailed(key(p, 0), 401);
            p.server.keys().markFailed(key(p, 1), 403);
            int before = p.upstream.requestCount();

            clock.advanceSeconds(300);
            // Both failed keys are due; this request takes one trial only, and with MAX_KEY_RETRIES=1 it
            // still reaches key 2: the failed trial was free.
            assertEquals(200, p.chat().statusCode());
            List<String> seen = p.upstream.all().subList(before, p.upstream.requestCount()).stream()
                    .map(MockUpstream.Received::key).toList();
            assertKeys(List.of(p.keys.get(0), p.keys.get(2)), seen);
            // The next request takes the other trial.
            assertEquals(200, p.chat().statusCode());
            assertKey(p.keys.get(1), p.upstream.all().get(before + 2).key(), null);
        }
    }

    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void fourKeysThatEach429OnceWithoutRetryAfterServeAgainAfterTheirShortRest() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(4, Map.of())) {
            for (String k : p.keys) {
                p.upstream.on(k, onceThenOk(MockUpstream.json(429, "{\"error\":{\"message\":\"slow\"}}")));
            }
            // Four 429s in a row use up the moves (MAX_KEY_RETRIES=3): the client gets the last one.
            assertEquals(429, p.chat().statusCode());
            for (int i = 0; i < 4; i++) {
                assertEquals(KeyState.Kind.COOLING_DOWN, key(p, i).state().kind());
                assertTrue(p.server.keys().cooldownRemainingSeconds(key(p, i)) <= 1, "1 s, not KEY_COOLDOWN");
            }
            // The next request waits for the first key back (1 s) instead of a flat minute or a 503.
            for (int i = 0; i < 4; i++) {
                assertEquals(200, p.chat().statusCode());
            }
            assertTrue(metric(p, "megallm_key_waits_total{outcome=\"served\"}") >= 1);
            assertEquals(0, metric(p, "megallm_key_waits_total{outcome=\"timed_out\"}"));
        }
    }

    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void aRequestWaitsForTheOnlyKeyAndThenSucceeds() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            p.upstream.on(p.keys.get(0), onceThenOk(MockUpstream.json(429, "{}", Map.of("Retry-After", "2"))));
            HttpResponse<String> r = p.chat();
            assertEquals(200, r.statusCode(), r.body());
            assertEquals(OK, r.body());
            assertEquals(2, keysSeen(p, 0), "the 429, then the same key after its rest");
            assertEquals(1, metric(p, "megallm_key_waits_total{outcome=\"served\"}"));
            assertEquals(1, metric(p, "megallm_key_wait_seconds_count"));
            assertEquals(0, metric(p, "megallm_key_waiters"));
        }
    }

    /**
     * Sends a chat request over a raw socket, waits until the proxy counts {@code waitersThen}
     * waiters, closes the socket and waits until the wait counts one client gone.
     */
    private static void waitThenVanish(ProxyUnderTest p, String json, int waitersThen) throws Exception {
        try (Socket s = new Socket("127.0.0.1", p.port())) {
            sendAndAwaitWaiters(p, s, json, waitersThen);
        }
        while (metric(p, "megallm_key_waits_total{outcome=\"client_gone\"}") != 1) {
            Thread.onSpinWait();
        }
    }

    /** Sends a chat request over the raw socket {@code s} and waits until the proxy counts {@code waiters} waiters. */
    private static void sendAndAwaitWaiters(ProxyUnderTest p, Socket s, String json, int waiters) throws Exception {
        byte[] body = json.getBytes(StandardCharsets.UTF_8);
        OutputStream out = s.getOutputStream();
        out.write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + "Content-Length: " + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        out.write(body);
        out.flush();
        while (metric(p, "megallm_key_waiters") != waiters) {
            Thread.onSpinWait();
        }
    }

    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void aClientThatLeavesWhileWaitingIsDroppedAndNothingOfItIsSent() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MAX_KEY_RETRIES", "0"))) {
            p.upstream.on(p.keys.get(0), onceThenOk(MockUpstream.json(429, "{}", Map.of("Retry-After", "2"))));
            assertEquals(429, p.chat().statusCode(), "no move left: the 429 goes to the client");
            assertEquals(1, p.upstream.requestCount());

            waitThenVanish(p, "{\"model\":\"gpt-4o\",\"messages\":[]}", 1);
            assertEquals(0, metric(p, "megallm_key_waiters"), "out of the wait at once");

            // A later request waits for the key and is served: by then the gone client's would have gone out.
            assertEquals(200, p.chat().statusCode());
            assertEquals(2, p.upstream.requestCount(), "nothing of the gone client's request reached the upstream");
        }
    }

    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void aNewRequestWaitsBehindTheRequestsAlreadyWaitingForAKey() throws Exception {
        // The pool's clock only moves when the test moves it, so the key comes back with no event
        // that tells the waiter: the moment a newcomer could take the key ahead of it.
        ManualKeyClock clock = new ManualKeyClock();
        try (ProxyUnderTest p = ProxyUnderTest.start(ProxyUnderTest.keys(1), Map.of("MAX_KEY_RETRIES", "0"), clock,
                null)) {
            p.upstream.on(p.keys.get(0), onceThenOk(MockUpstream.json(429, "{}", Map.of("Retry-After", "5"))));
            assertEquals(429, p.chat().statusCode());
            CompletableFuture<HttpResponse<String>> first = p.client().sendAsync(chatNamed(p, "first"),
                    HttpResponse.BodyHandlers.ofString());
            while (metric(p, "megallm_key_waiters") != 1) {
                Thread.onSpinWait();
            }
            clock.advanceSeconds(5);
            CompletableFuture<HttpResponse<String>> second = p.client().sendAsync(chatNamed(p, "second"),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, first.get(20, TimeUnit.SECONDS).statusCode());
            assertEquals(200, second.get(20, TimeUnit.SECONDS).statusCode());
            List<String> order = p.upstream.all().subList(1, 3).stream()
                    .map(r -> r.bodyText().contains("\"first\"") ? "first" : "second").toList();
            assertEquals(List.of("first", "second"), order, "contract §7: in arrival order");
            assertEquals(2, metric(p, "megallm_key_waits_total{outcome=\"served\"}"), "the newcomer queued too");
        }
    }

    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void aNewcomerQueuedBehindAWaiterThatVanishesIsDroppedAtOnceAndNothingOfItIsSent() throws Exception {
        ManualKeyClock clock = new ManualKeyClock();
        try (ProxyUnderTest p = ProxyUnderTest.start(ProxyUnderTest.keys(1), Map.of("MAX_KEY_RETRIES", "0"), clock,
                null)) {
            p.upstream.on(p.keys.get(0), onceThenOk(MockUpstream.json(429, "{}", Map.of("Retry-After", "5"))));
            assertEquals(429, p.chat().statusCode());
            CompletableFuture<HttpResponse<String>> first = p.client().sendAsync(chatNamed(p, "first"),
                    HttpResponse.BodyHandlers.ofString());
            while (metric(p, "megallm_key_waiters") != 1) {
                Thread.onSpinWait();
            }
            waitThenVanish(p, "{\"model\":\"gpt-4o\",\"user\":\"gone\",\"messages\":[]}", 2);
            assertEquals(1, metric(p, "megallm_key_waiters"), "out of the queue at once; the first still waits");

            clock.advanceSeconds(5);
            CompletableFuture<HttpResponse<String>> third = p.client().sendAsync(chatNamed(p, "third"),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, first.get(20, TimeUnit.SECONDS).statusCode());
            assertEquals(200, third.get(20, TimeUnit.SECONDS).statusCode());
            assertEquals(3, p.upstream.requestCount());
            assertTrue(p.upstream.all().stream().noneMatch(r -> r.bodyText().contains("\"gone\"")),
                    "nothing of the gone client's request reached the upstream");
        }
    }

    private static HttpRequest chatNamed(ProxyUnderTest p, String name) {
        return HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"gpt-4o\",\"user\":\"" + name
                        + "\",\"messages\":[]}"))
                .timeout(Duration.ofSeconds(30)).build();
    }

    @Test
    void withKeyWaitZeroARequestThatFindsNoKeyGets503AtOnceWithRetryAfter() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("KEY_WAIT", "0", "MAX_KEY_RETRIES", "0"))) {
            p.upstream.otherwise(MockUpstream.json(429, "{}", Map.of("Retry-After", "2")));
            assertEquals(429, p.chat().statusCode());
            HttpResponse<String> r = p.chat();
            assertEquals(503, r.statusCode());
            assertTrue(r.body().contains("\"code\":\"no_available_keys\""), r.body());
            assertTrue(List.of("1", "2").contains(r.headers().firstValue("Retry-After").orElse("")));
            assertEquals(1, p.upstream.requestCount());
        }
    }

    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void whenTheWaitIsFullTheNextRequestGets503AtOnce() throws Exception {
        // The wait holds as many requests as HTTP_POOL_MAXSIZE: here one.
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MAX_KEY_RETRIES", "0", "HTTP_POOL_MAXSIZE", "1"))) {
            p.upstream.on(p.keys.get(0), onceThenOk(MockUpstream.json(429, "{}", Map.of("Retry-After", "3"))));
            assertEquals(429, p.chat().statusCode());
            try (Socket s = new Socket("127.0.0.1", p.port())) {
                sendAndAwaitWaiters(p, s, "{\"model\":\"gpt-4o\",\"messages\":[]}", 1);
                HttpResponse<String> refused = p.chat();
                assertEquals(503, refused.statusCode(), "the wait is full: 503 at once, not after the rest");
                assertEquals(1, metric(p, "megallm_key_waits_total{outcome=\"full\"}"));
                assertEquals(1, metric(p, "megallm_key_waiters"), "refused while the other still waits");
            }
            while (metric(p, "megallm_key_waiters") != 0) {
                Thread.onSpinWait();
            }
            assertEquals(1, p.upstream.requestCount(), "neither the refused nor the gone request went upstream");
        }
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void theRetryBudgetCapsA502StormAtTheOfferedLoad() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MEGALLM_MAX_RETRIES", "3", "RETRY_BUDGET", "20",
                "RETRY_BUDGET_MIN", "0"))) {
            p.upstream.otherwise(MockUpstream.json(502, "{\"error\":{\"message\":\"bad gateway\"}}"));
            int requests = 50;
            for (int i = 0; i < requests; i++) {
                assertEquals(502, p.chat().statusCode(), "the upstream's own answer, at once when over budget");
            }
            int calls = p.upstream.requestCount();
            assertTrue(calls <= requests + requests * 20 / 100, calls + " upstream calls for " + requests
                    + " requests; without a budget it would be " + requests * 4);
            assertTrue(metric(p, "megallm_retries_refused_total") > 0);
        }
    }

    /** §7: the once-more resend is a budgeted retry, after a trial key's unanswered send too. */
    @Test
    void theResendAfterATrialGotNoAnswerIsTakenFromTheRetryBudget() throws Exception {
        ManualKeyClock clock = new ManualKeyClock();
        try (ProxyUnderTest p = ProxyUnderTest.start(ProxyUnderTest.keys(2), Map.of("RETRY_BUDGET", "0",
                "RETRY_BUDGET_MIN", "0"), clock, null)) {
            p.upstream.on(p.keys.get(0), MockUpstream.sequence(MockUpstream.json(401, "{}"), MockUpstream.hangUp()));
            assertEquals(200, p.chat().statusCode(), "a key switch after a 401 is no retry");
            clock.advanceSeconds(300);
            HttpResponse<String> r = p.chat();
            assertEquals(502, r.statusCode(), r.body());
            assertEquals(2, keysSeen(p, 0), "the 401, then the trial");
            assertEquals(1, keysSeen(p, 1), "the first request's 200, and no resend of the second");
            assertEquals(1, metric(p, "megallm_retries_refused_total"));
        }
    }

    @Test
    void eightRequestsWithOnePromptCacheKeyGoToOneKey() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(4, Map.of())) {
            for (int i = 0; i < 8; i++) {
                HttpResponse<String> r = p.post("/v1/chat/completions",
                        "{\"model\":\"gpt-4o\",\"prompt_cache_key\":\"conversation-7\",\"messages\":[{\"role\":\"user\",\"content\":\"turn "
                                + i + "\"}]}");
                assertEquals(200, r.statusCode());
            }
            List<String> used = p.upstream.all().stream().map(MockUpstream.Received::key).distinct().toList();
            assertEquals(1, used.size(), "one key for the conversation: " + used.size());
            assertEquals(8, metric(p, "megallm_affinity_total{result=\"hit\"}"));

            // Without the field: strict round robin over the four keys.
            for (int i = 0; i < 4; i++) {
                assertEquals(200, p.chat().statusCode());
            }
            assertEquals(4, p.upstream.all().subList(8, 12).stream().map(MockUpstream.Received::key).distinct().count());
        }
    }

    @Test
    void aKeyTheUpstreamLimitsTwiceInASecondIsPacedAndTheOverflowGoesToTheOtherKey() throws Exception {
        ManualKeyClock clock = new ManualKeyClock();
        try (ProxyUnderTest p = ProxyUnderTest.start(ProxyUnderTest.keys(2), Map.of(), clock, null)) {
            // Key 0 takes five requests a second: its 1st and 7th calls are 429s, the rest 200.
            AtomicInteger calls = new AtomicInteger();
            p.upstream.on(p.keys.get(0), (ctx, req) -> {
                int n = calls.incrementAndGet();
                (n == 1 || n == 7 ? MockUpstream.json(429, "{}", Map.of("Retry-After", "1"))
                        : MockUpstream.json(200, OK)).respond(ctx, req);
            });
            assertEquals(200, p.chat().statusCode());
            while (keysSeen(p, 0) == 0) {
                assertEquals(200, p.chat().statusCode());
            }
            clock.advanceSeconds(1);
            while (keysSeen(p, 0) < 7) {
                assertEquals(200, p.chat().statusCode(), "every 429 moved to the other key");
            }
            assertEquals(5.0, key(p, 0).pacedPerSecond(clock.nanoTime()), 1e-9,
                    "five accepted in the second between its two 429s");
            assertTrue(p.logLines().stream().anyMatch(l -> l.contains("key " + ApiKey.mask(p.keys.get(0))
                    + " paced: two 429s within 10 s")), p.logLines().toString());
            assertEquals(1, metric(p, "megallm_keys_paced"));

            clock.advanceSeconds(1);
            int before = p.upstream.requestCount();
            for (int i = 0; i < 12; i++) {
                assertEquals(200, p.chat().statusCode());
            }
            List<String> seen = p.upstream.all().subList(before, before + 12).stream()
                    .map(MockUpstream.Received::key).toList();
            String masked = seen.stream().map(ApiKey::mask).toList().toString();
            // No time passes on the pool's clock: key 0 has its three slots (one due, two of
            // tolerance) and the one slot its 1-s rest banked (0.9 × 5.25 less those three); the
            // other key takes the rest, where strict round robin gave 6 and 6.
            assertEquals(4, seen.stream().filter(p.keys.get(0)::equals).count(), masked);
            assertEquals(8, seen.stream().filter(p.keys.get(1)::equals).count(), masked);
            assertEquals(7 + 4, calls.get(), "no 429 was paid for the pacing");
        }
    }

    @Test
    void aRestartWithTheSameStateFileKeepsAFailedKeyOut() throws Exception {
        List<String> keys = ProxyUnderTest.keys(2);
        java.nio.file.Path dir;
        try (ProxyUnderTest first = ProxyUnderTest.start(keys, Map.of())) {
            dir = first.workDir;
            first.upstream.on(keys.get(1), MockUpstream.json(402, "{}"));
            first.chat();
            assertEquals(200, first.chat().statusCode());
        }
        try (ProxyUnderTest second = ProxyUnderTest.start(keys, Map.of(), KeyClock.SYSTEM, dir)) {
            for (int i = 0; i < 3; i++) {
                assertEquals(200, second.chat().statusCode());
            }
            assertEquals(0, keysSeen(second, 1), "the failed key stays out after the restart");
            assertEquals(299, second.server.keys().recheckInSeconds(key(second, 1)), 1.0);
        }
    }
}
