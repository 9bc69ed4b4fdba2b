package io.megallm.proxy.server.relay;

import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.key.KeyState;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.http.HttpResponse;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import static io.megallm.proxy.server.testing.KeyAsserts.assertKeys;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Contract §7, one test (at least) per row of the failover table. */
class FailoverTest {

    private static final String OK = "{\"id\":\"ok\"}";

    private static KeyState stateOf(ProxyUnderTest p, int i) {
        String masked = ApiKey.mask(p.keys.get(i));
        return p.server.keys().keys().stream().filter(k -> k.masked().equals(masked)).findFirst().orElseThrow().state();
    }

    private static List<String> keysSeen(ProxyUnderTest p) {
        return p.upstream.all().stream().map(MockUpstream.Received::key).collect(Collectors.toList());
    }

    @ParameterizedTest
    @ValueSource(ints = {401, 402, 403})
    void rejectedKeyIsMarkedFailedAndTheRequestMovesOn(int status) throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of())) {
            p.upstream.on(p.keys.get(0), MockUpstream.json(status, "{\"error\":{\"message\":\"no\"}}"));
            p.upstream.on(p.keys.get(1), MockUpstream.json(200, OK));
            HttpResponse<String> r = p.chat();
            assertEquals(200, r.statusCode());
            assertEquals(OK, r.body());
            assertKeys(List.of(p.keys.get(0), p.keys.get(1)), keysSeen(p));
            KeyState s = stateOf(p, 0);
            assertEquals(KeyState.Kind.FAILED, s.kind());
            assertEquals("upstream " + status, s.reason());

            // Out of rotation: the next requests never use it again.
            for (int i = 0; i < 3; i++) {
                assertEquals(200, p.chat().statusCode());
            }
            assertEquals(1, keysSeen(p).stream().filter(p.keys.get(0)::equals).count());
        }
    }

    @Test
    void rateLimitedKeyRestsForRetryAfterSeconds() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of())) {
            p.upstream.on(p.keys.get(0), MockUpstream.json(429, "{}", Map.of("Retry-After", "120")));
            p.upstream.on(p.keys.get(1), MockUpstream.json(200, OK));
            HttpResponse<String> r = p.chat();
            assertEquals(200, r.statusCode());
            KeyState s = stateOf(p, 0);
            assertEquals(KeyState.Kind.COOLING_DOWN, s.kind());
            long left = p.server.keys().cooldownRemainingSeconds(
                    p.server.keys().keys().stream().filter(k -> k.masked().equals(ApiKey.mask(p.keys.get(0)))).findFirst().orElseThrow());
            assertTrue(left > 60 && left <= 120, "cooldown left " + left);
        }
    }

    @Test
    void retryAfterAsHttpDateIsHonoured() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of())) {
            String date = DateTimeFormatter.RFC_1123_DATE_TIME.format(ZonedDateTime.now().plusSeconds(600));
            p.upstream.on(p.keys.get(0), MockUpstream.json(429, "{}", Map.of("Retry-After", date)));
            p.upstream.on(p.keys.get(1), MockUpstream.json(200, OK));
            assertEquals(200, p.chat().statusCode());
            ApiKey k = p.server.keys().keys().get(0);
            long left = p.server.keys().cooldownRemainingSeconds(k);
            assertTrue(left > 500 && left <= 601, "cooldown left " + left);
        }
    }

    /**
     * Audit: one forged or mistaken header rested a key 7 days (persisted), and a number too long
     * for a long fell back to 1 s. An upstream-given rest is capped at a day (a daily quota resets
     * within one); every absurd form gets the cap.
     */
    @ParameterizedTest
    @ValueSource(strings = {"99999999", "2147483648", "9999999999999999999999", "date 400 days ahead"})
    void anAbsurdRetryAfterRestsTheKeyADayAtMost(String retryAfter) throws Exception {
        String value = retryAfter.startsWith("date")
                ? DateTimeFormatter.RFC_1123_DATE_TIME.format(ZonedDateTime.now().plusDays(400))
                : retryAfter;
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of())) {
            p.upstream.on(p.keys.get(0), MockUpstream.json(429, "{}", Map.of("Retry-After", value)));
            p.upstream.on(p.keys.get(1), MockUpstream.json(200, OK));
            assertEquals(200, p.chat().statusCode());
            long left = p.server.keys().cooldownRemainingSeconds(p.server.keys().keys().stream()
                    .filter(k -> k.masked().equals(ApiKey.mask(p.keys.get(0)))).findFirst().orElseThrow());
            long day = 24 * 3600;
            assertTrue(left > day - 60 && left <= day, "cooldown left " + left);
        }
    }

    @Test
    void rateLimitWithoutRetryAfterRestsOneSecondTheFirstTime() throws Exception {
        // Contract §7 (2026-12-05): 1 s, doubled per consecutive 429 up to KEY_COOLDOWN (KeyLifecycleTest).
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of("KEY_COOLDOWN", "45"))) {
            p.upstream.on(p.keys.get(0), MockUpstream.json(429, "{}"));
            p.upstream.on(p.keys.get(1), MockUpstream.json(200, OK));
            assertEquals(200, p.chat().statusCode());
            long left = p.server.keys().cooldownRemainingSeconds(p.server.keys().keys().get(0));
            assertTrue(left == 1 || left == -1, "cooldown left " + left);
        }
    }

    @Test
    void cooledKeyReturnsByItself() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MAX_KEY_RETRIES", "0"))) {
            p.upstream.otherwise(MockUpstream.json(429, "{\"error\":{\"message\":\"slow down\"}}",
                    Map.of("Retry-After", "0")));
            HttpResponse<String> first = p.chat();
            assertEquals(429, first.statusCode());
            // Retry-After: 0 means the rest is already over: the key is in rotation again.
            p.upstream.otherwise(MockUpstream.json(200, OK));
            assertEquals(200, p.chat().statusCode());
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {500, 502, 503, 504})
    void transientStatusRetriesTheSameKeyThenMovesOnWithoutBlamingIt(int status) throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of("MEGALLM_MAX_RETRIES", "2"))) {
            p.upstream.on(p.keys.get(0), MockUpstream.json(status, "{\"error\":\"busy\"}"));
            p.upstream.on(p.keys.get(1), MockUpstream.json(200, OK));
            HttpResponse<String> r = p.chat();
            assertEquals(200, r.statusCode());
            assertKeys(List.of(p.keys.get(0), p.keys.get(0), p.keys.get(0), p.keys.get(1)), keysSeen(p));
            assertEquals(KeyState.Kind.AVAILABLE, stateOf(p, 0).kind());
        }
    }

    @Test
    void transientFailureThatRecoversStaysOnTheSameKey() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of())) {
            int[] calls = {0};
            p.upstream.on(p.keys.get(0), (ctx, req) -> {
                if (calls[0]++ == 0) {
                    MockUpstream.json(503, "{}").respond(ctx, req);
                } else {
                    MockUpstream.json(200, OK).respond(ctx, req);
                }
            });
            assertEquals(200, p.chat().statusCode());
            assertKeys(List.of(p.keys.get(0), p.keys.get(0)), keysSeen(p));
        }
    }

    @Test
    void connectFailureGives502WhenNothingAnswers() throws Exception {
        int closedPort;
        try (ServerSocket s = new ServerSocket(0)) {
            closedPort = s.getLocalPort();
        }
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of(
                "MEGALLM_BASE_URL", "http://127.0.0.1:" + closedPort + "/v1", "MEGALLM_MAX_RETRIES", "1"))) {
            HttpResponse<String> r = p.chat();
            assertEquals(502, r.statusCode());
            assertTrue(r.body().contains("\"code\":\"upstream_unreachable\""), r.body());
            assertTrue(r.body().startsWith("{\"error\":{\"message\":"), r.body());
            assertEquals("false", r.headers().firstValue("x-should-retry").orElse(null),
                    "the proxy has retried already: an SDK's retries would only multiply the sends");
            for (ApiKey k : p.server.keys().keys()) {
                assertEquals(KeyState.Kind.AVAILABLE, k.state().kind(), "a connect failure must not blame a key");
            }
        }
    }

    /**
     * A host that drops connection attempts (a full accept queue here, a firewall in life): after
     * MEGALLM_TIMEOUT of trying, the client gets its 504 instead of waiting out the retries of
     * every key (4 tries on each of 4 keys: 16 connect timeouts before).
     */
    @Test
    void aHostThatDropsConnectionsCostsTheClientOneTimeoutNotOneForEveryRetry() throws Exception {
        List<Socket> filling = new ArrayList<>();
        try (ServerSocket blackHole = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            boolean full = false;
            for (int i = 0; i < 16 && !full; i++) {
                Socket s = new Socket();
                filling.add(s);
                try {
                    s.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), blackHole.getLocalPort()), 300);
                } catch (SocketTimeoutException e) {
                    full = true;
                }
            }
            Assumptions.assumeTrue(full, "this kernel does not drop connections to a full accept queue");
            try (ProxyUnderTest p = ProxyUnderTest.start(4, Map.of(
                    "MEGALLM_BASE_URL", "http://127.0.0.1:" + blackHole.getLocalPort() + "/v1",
                    "MEGALLM_TIMEOUT", "1", "MEGALLM_MAX_RETRIES", "3", "MAX_KEY_RETRIES", "3"))) {
                HttpResponse<String> r = p.chat();
                assertEquals(504, r.statusCode());
                assertTrue(r.body().contains("\"code\":\"upstream_timeout\""), r.body());
                String metrics = p.get("/metrics").body();
                assertTrue(metrics.contains("\nmegallm_upstream_attempts_total{outcome=\"timeout\"} 1\n"),
                        "one connect timeout took the whole MEGALLM_TIMEOUT, no further try: " + metrics);
            }
        } finally {
            for (Socket s : filling) {
                s.close();
            }
        }
    }

    @Test
    void timeoutBeforeHeadersGives504() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of("MEGALLM_TIMEOUT", "0.3", "MEGALLM_MAX_RETRIES", "1"))) {
            p.upstream.otherwise(MockUpstream.stall());
            HttpResponse<String> r = p.chat();
            assertEquals(504, r.statusCode());
            assertTrue(r.body().contains("\"code\":\"upstream_timeout\""), r.body());
            // The request was sent whole and may have been billed: once more at most, in all (§7).
            assertEquals(2, p.upstream.requestCount());
            assertEquals("false", r.headers().firstValue("x-should-retry").orElse(null),
                    "an SDK's two retries would send it, maybe billed, twice more");
        }
    }

    @Test
    void whenEveryKeyIsRejectedTheClientGetsTheLastUpstreamAnswerAsItWas() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(3, Map.of())) {
            for (int i = 0; i < 3; i++) {
                p.upstream.on(p.keys.get(i), MockUpstream.json(401,
                        "{\"error\":{\"message\":\"invalid key " + i + "\"}}", Map.of("X-Attempt", "" + i)));
            }
            HttpResponse<String> r = p.chat();
            assertEquals(401, r.statusCode());
            String lastKey = keysSeen(p).get(2);
            int last = p.keys.indexOf(lastKey);
            assertEquals("{\"error\":{\"message\":\"invalid key " + last + "\"}}", r.body());
            assertEquals("" + last, r.headers().firstValue("x-attempt").orElse(null));
            assertEquals(3, keysSeen(p).stream().distinct().count(), "never back to a key already tried");
        }
    }

    /**
     * Audit: rejections too big to keep (over 1 MiB) left the client a 502 "could not be reached",
     * which is false and makes clients retry instead of backing off.
     */
    @ParameterizedTest
    @ValueSource(ints = {2, 3}) // out of keys (it was a 503 no_available_keys), out of moves (a 502)
    void whenTheLastAnswerIsTooBigToKeepTheClientStillGetsItsStatusAndRetryAfter(int keys) throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(keys, Map.of("MAX_KEY_RETRIES", "1"))) {
            String big = "{\"error\":{\"message\":\"" + "x".repeat(1024 * 1024) + "\"}}";
            p.upstream.otherwise(MockUpstream.json(429, big, Map.of("Retry-After", "30")));
            HttpResponse<String> r = p.chat();
            assertEquals(429, r.statusCode(), r.body());
            assertEquals("30", r.headers().firstValue("retry-after").orElse(null));
            assertTrue(r.body().startsWith("{\"error\":{\"message\":"), r.body());
            assertTrue(r.body().contains("\"code\":\"upstream_answer_too_large\""), r.body());
            assertTrue(r.body().contains("429"), r.body());
            assertEquals(2, p.upstream.requestCount());
        }
    }

    /** An error answer held to be masked (a 400) and too big to hold: its status, in our shape, and no failover. */
    @Test
    void aRelayedErrorAnswerTooBigToHoldKeepsItsStatusAndIsNotRetried() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of())) {
            String big = "{\"error\":{\"message\":\"" + "x".repeat(1024 * 1024) + "\"}}";
            p.upstream.otherwise(MockUpstream.json(400, big, Map.of()));
            HttpResponse<String> r = p.chat();
            assertEquals(400, r.statusCode(), r.body());
            assertTrue(r.body().contains("\"code\":\"upstream_answer_too_large\""), r.body());
            assertEquals(1, p.upstream.requestCount(), "a 400 is the request's fault: never sent again");
            HttpResponse<String> next = p.chat();
            assertEquals(400, next.statusCode(), "the key was not blamed and the proxy still serves");
        }
    }

    @Test
    void switchesAtMostMaxKeyRetriesTimes() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(5, Map.of("MAX_KEY_RETRIES", "2"))) {
            p.upstream.otherwise(MockUpstream.json(429, "{\"error\":{\"message\":\"rate\"}}", Map.of("Retry-After", "30")));
            HttpResponse<String> r = p.chat();
            assertEquals(429, r.statusCode());
            assertEquals("{\"error\":{\"message\":\"rate\"}}", r.body());
            assertEquals(3, p.upstream.requestCount());
            assertEquals(3, keysSeen(p).stream().distinct().count());
        }
    }

    @Test
    void whenEveryKeyHasFailedThe503HasNoRetryAfterAndTellsClientLibrariesNotToRetry() throws Exception {
        // Python audit: with no Retry-After the SDKs retried twice within seconds, for nothing.
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("KEY_WAIT", "0"))) {
            p.upstream.otherwise(MockUpstream.json(401, "{\"error\":{\"message\":\"bad key\"}}"));
            assertEquals(401, p.chat().statusCode());
            HttpResponse<String> r = p.chat();
            assertEquals(503, r.statusCode(), r.body());
            assertTrue(r.body().contains("\"code\":\"no_available_keys\""), r.body());
            assertTrue(r.headers().firstValue("retry-after").isEmpty(), "no key comes back by itself");
            assertEquals("false", r.headers().firstValue("x-should-retry").orElse(null));
        }
    }

    @Test
    void noAvailableKeyGives503WithRetryAfterOfTheFirstReturningKey() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of())) {
            p.upstream.on(p.keys.get(0), MockUpstream.json(429, "{}", Map.of("Retry-After", "100")));
            p.upstream.on(p.keys.get(1), MockUpstream.json(429, "{}", Map.of("Retry-After", "40")));
            assertEquals(429, p.chat().statusCode());
            int before = p.upstream.requestCount();
            HttpResponse<String> r = p.chat();
            assertEquals(503, r.statusCode());
            assertTrue(r.body().contains("\"code\":\"no_available_keys\""), r.body());
            String retryAfter = r.headers().firstValue("retry-after").orElse(null);
            assertNotNull(retryAfter);
            long seconds = Long.parseLong(retryAfter);
            assertTrue(seconds > 20 && seconds <= 40, "Retry-After " + seconds);
            assertEquals(before, p.upstream.requestCount(), "no upstream call without a key");
            assertTrue(r.headers().firstValue("x-should-retry").isEmpty(), "a short wait is the SDK's to wait out");
        }
    }

    /**
     * Audit with the OpenAI Node SDK (2026-12-07): it sleeps out any Retry-After before its retry,
     * so a 503 saying "in an hour" left the application's call hanging for an hour, without an
     * error. Past a minute the proxy's own answers say x-should-retry: false, which the SDKs obey.
     */
    @Test
    void aWaitOfMoreThanAMinuteTellsClientLibrariesNotToRetry() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            p.upstream.otherwise(MockUpstream.json(429, "{}", Map.of("Retry-After", "3600")));
            HttpResponse<String> relayed = p.chat();
            assertEquals(429, relayed.statusCode());
            assertTrue(relayed.headers().firstValue("x-should-retry").isEmpty(), "a relayed answer is passed on as is");
            HttpResponse<String> r = p.chat();
            assertEquals(503, r.statusCode(), r.body());
            assertTrue(Long.parseLong(r.headers().firstValue("retry-after").orElse("0")) > 3000);
            assertEquals("false", r.headers().firstValue("x-should-retry").orElse(null));
        }
    }

    @Test
    void aSuccessDoesNotBringBackAFailedKey() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of())) {
            p.upstream.on(p.keys.get(0), MockUpstream.json(401, "{}"));
            p.upstream.on(p.keys.get(1), MockUpstream.json(200, OK));
            for (int i = 0; i < 4; i++) {
                assertEquals(200, p.chat().statusCode());
            }
            assertEquals(KeyState.Kind.FAILED, stateOf(p, 0).kind());
            assertFalse(p.server.keys().stats().available() > 1);
        }
    }

    @Test
    void theRequestBodyIsReplayedIdenticallyOnEveryAttempt() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(3, Map.of())) {
            p.upstream.on(p.keys.get(0), MockUpstream.json(401, "{}"));
            p.upstream.on(p.keys.get(1), MockUpstream.json(429, "{}"));
            p.upstream.on(p.keys.get(2), MockUpstream.echo());
            StringBuilder big = new StringBuilder("{\"model\":\"m\",\"input\":\"");
            for (int i = 0; i < 200_000; i++) {
                big.append((char) ('a' + i % 26));
            }
            big.append("\"}");
            HttpResponse<String> r = p.post("/v1/embeddings", big.toString());
            assertEquals(200, r.statusCode());
            assertEquals(big.toString(), r.body());
            List<MockUpstream.Received> all = p.upstream.all();
            assertEquals(3, all.size());
            for (MockUpstream.Received rec : all) {
                assertEquals(big.toString(), rec.bodyText());
            }
        }
    }
}
