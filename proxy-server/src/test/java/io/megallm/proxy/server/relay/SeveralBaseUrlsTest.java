package io.megallm.proxy.server.relay;

import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.key.KeyClock;
import io.megallm.proxy.key.KeyState;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;

import java.net.ServerSocket;
import java.net.http.HttpResponse;
import java.util.List;
import java.util.Map;

import static io.megallm.proxy.server.testing.KeyAsserts.assertKey;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Contract §15: several base URLs, the first used while it answers, a refusing one passed over. */
class SeveralBaseUrlsTest {

    private static final String OK = "{\"id\":\"second\"}";

    @Test
    void aFirstUrlThatRefusesConnectionsMovesTheRequestToTheNextWithoutBlamingTheKey() throws Exception {
        int dead;
        try (ServerSocket s = new ServerSocket(0)) {
            dead = s.getLocalPort();
        }
        try (MockUpstream second = new MockUpstream()) {
            second.otherwise(MockUpstream.json(200, OK));
            String urls = "http://127.0.0.1:" + dead + "/v1, " + second.baseUrl();
            try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MEGALLM_BASE_URL", urls, "MAX_KEY_RETRIES", "0",
                    "MEGALLM_MAX_RETRIES", "0"))) {
                HttpResponse<String> r = p.chat();
                assertEquals(200, r.statusCode(), r.body());
                assertEquals(OK, r.body());
                assertEquals(1, second.requestCount());
                assertKey(p.keys.get(0), second.take().key(), "the same key, through the next URL");
                for (ApiKey k : p.server.keys().keys()) {
                    assertEquals(KeyState.Kind.AVAILABLE, k.state().kind());
                }
                String health = p.get("/health").body();
                assertTrue(health.contains("\"upstreams\":[{\"url\":\"http://127.0.0.1:" + dead + "/v1\",\"state\":\"paused\"},"
                        + "{\"url\":\"" + second.baseUrl() + "\",\"state\":\"available\"}]"), health);
                String metrics = p.get("/metrics").body();
                assertTrue(metrics.contains("megallm_upstream_base_url_up{url=\"http://127.0.0.1:" + dead + "/v1\"} 0"));
                // Observability audit: the failed connection was in no count and no log line.
                assertTrue(metrics.contains("megallm_upstream_attempts_total{outcome=\"connect_error\"} 1\n"), metrics);
                assertTrue(p.logLines().stream().anyMatch(l -> l.startsWith("WARN ")
                        && l.contains("upstream http://127.0.0.1:" + dead + "/v1 failed (")), p.logLines().toString());
                // While the first is paused, requests go to the second at once.
                assertEquals(200, p.chat().statusCode());
                assertEquals(2, second.requestCount());
            }
        }
    }

    /**
     * Audit: a first URL that takes connections and never answers got every request twice and the
     * client a 504, the second URL never used. A timeout moves the request like a connect failure
     * (§15); the move is the one resend §7 allows.
     */
    @Test
    void aFirstUrlThatNeverAnswersIsPausedAndTheResendGoesToTheNext() throws Exception {
        try (MockUpstream first = new MockUpstream(); MockUpstream second = new MockUpstream()) {
            first.otherwise(MockUpstream.stall());
            second.otherwise(MockUpstream.json(200, OK));
            String urls = first.baseUrl() + "," + second.baseUrl();
            try (ProxyUnderTest p = ProxyUnderTest.start(ProxyUnderTest.keys(1), Map.of("MEGALLM_BASE_URL", urls,
                    "MEGALLM_TIMEOUT", "0.5"), KeyClock.SYSTEM, null, first)) {
                HttpResponse<String> r = p.chat();
                assertEquals(200, r.statusCode(), r.body());
                assertEquals(OK, r.body());
                assertEquals(1, first.requestCount(), "sent once to the silent URL");
                assertEquals(1, second.requestCount(), "and once more, to the next");
                assertKey(p.keys.get(0), second.take().key(), "the same key, through the next URL");
                assertEquals(KeyState.Kind.AVAILABLE, p.server.keys().keys().get(0).state().kind());
                String health = p.get("/health").body();
                assertTrue(health.contains("{\"url\":\"" + first.baseUrl() + "\",\"state\":\"paused\"}"), health);
            }
        }
    }

    @Test
    void theFirstUrlIsUsedWhileItAnswers() throws Exception {
        try (MockUpstream second = new MockUpstream()) {
            try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
                // ProxyUnderTest points MEGALLM_BASE_URL at its own mock; restart with a list.
                String urls = p.upstream.baseUrl() + "," + second.baseUrl();
                try (ProxyUnderTest q = ProxyUnderTest.start(1, Map.of("MEGALLM_BASE_URL", urls))) {
                    for (int i = 0; i < 3; i++) {
                        assertEquals(200, q.chat().statusCode());
                    }
                    assertEquals(0, second.requestCount());
                    assertFalse(q.get("/health").body().contains("paused"));
                }
            }
        }
    }

    /**
     * Observability audit: with one base URL that failed, the gauge said 1 and app.log said
     * nothing; only access.log knew. Its state is kept (nowhere else to go, so nothing is passed
     * over), logged once when it fails and once when it answers again.
     */
    @Test
    void oneBaseUrlThatFailsShowsInTheGaugeAndTheLogAndComesBack() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MEGALLM_TIMEOUT", "0.3"))) {
            String url = p.upstream.baseUrl();
            p.upstream.otherwise(MockUpstream.stall());
            assertEquals(504, p.chat().statusCode());
            assertTrue(p.get("/metrics").body().contains("megallm_upstream_base_url_up{url=\"" + url + "\"} 0"));
            assertFalse(p.get("/health").body().contains("upstreams"), "one URL: no list in /health");
            p.upstream.otherwise(MockUpstream.json(200, OK));
            assertEquals(200, p.chat().statusCode());
            assertTrue(p.get("/metrics").body().contains("megallm_upstream_base_url_up{url=\"" + url + "\"} 1"));
            List<String> lines = p.logLines().stream().filter(l -> l.contains("upstream " + url + " ")).toList();
            assertEquals(2, lines.size(), lines.toString());
            assertTrue(lines.get(0).startsWith("WARN ") && lines.get(0).contains("failed (no answer head within MEGALLM_TIMEOUT)"),
                    lines.get(0));
            assertTrue(lines.get(1).startsWith("INFO ") && lines.get(1).endsWith("answers again"), lines.get(1));
        }
    }

    @Test
    void oneBaseUrlShowsNoUpstreamsInHealth() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            assertFalse(p.get("/health").body().contains("upstreams"));
        }
    }
}
