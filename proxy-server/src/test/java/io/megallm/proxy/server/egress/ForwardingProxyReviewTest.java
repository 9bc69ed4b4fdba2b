package io.megallm.proxy.server.egress;

import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;

import java.net.http.HttpResponse;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Contract §15: an http base URL's requests forwarded by an HTTP proxy in absolute form, edge cases. */
class ForwardingProxyReviewTest {

    private static final String OK = "{\"id\":\"through\"}";

    /** The absolute form carries the base URL's path and the client's query; credentials percent-decoded. */
    @Test
    void theAbsoluteFormCarriesTheBasePathAndQueryAndDecodedCredentials() throws Exception {
        try (TestProxy proxy = new TestProxy(TestProxy.Kind.HTTP, "al@ice", "p:s+s%");
             MockUpstream upstream = new MockUpstream()) {
            upstream.otherwise(MockUpstream.json(200, OK));
            String base = "http://127.0.0.1:" + upstream.port() + "/openai/v1";
            try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MEGALLM_BASE_URL", base,
                    "HTTP_PROXY", "http://al%40ice:p%3As+s%25@127.0.0.1:" + proxy.port()))) {
                HttpResponse<String> r = p.post("/v1/chat/completions?api-version=2024-06-01&x=%2F",
                        "{\"model\":\"m\"}");
                assertEquals(200, r.statusCode(), r.body());
                assertEquals(List.of("POST " + base + "/chat/completions?api-version=2024-06-01&x=%2F HTTP/1.1"),
                        proxy.forwarded);
                assertEquals(List.of(), proxy.refusals);
                assertEquals("/openai/v1/chat/completions?api-version=2024-06-01&x=%2F", upstream.take().uri());
            }
        }
    }

    @Test
    void anIpv6ProxyLiteralIsReachedForForwardingAndForSocks() throws Exception {
        java.net.InetAddress v6 = java.net.InetAddress.getByName("::1");
        try (TestProxy http = new TestProxy(TestProxy.Kind.HTTP, "u", "p", v6);
             ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("HTTP_PROXY", "http://u:p@[::1]:" + http.port()))) {
            p.upstream.otherwise(MockUpstream.json(200, OK));
            HttpResponse<String> r = p.chat();
            assertEquals(200, r.statusCode(), r.body());
            assertEquals(1, http.forwarded.size());
        }
        try (TestProxy socks = new TestProxy(TestProxy.Kind.SOCKS5, "u", "p", v6);
             ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("ALL_PROXY", "socks5h://u:p@[::1]:" + socks.port()))) {
            p.upstream.otherwise(MockUpstream.json(200, OK));
            HttpResponse<String> r = p.chat();
            assertEquals(200, r.statusCode(), r.body());
            assertEquals(1, socks.destinations.size());
        }
    }

    /** A SOCKS5 proxy that refuses the credentials, or wants some we lack: 502 at once, one login. */
    @Test
    void aSocksAuthenticationFailureIsOne502AndOneLogin() throws Exception {
        for (String creds : new String[] {"u:wrong@", ""}) {
            try (TestProxy socks = new TestProxy(TestProxy.Kind.SOCKS5, "u", "p");
                 ProxyUnderTest p = ProxyUnderTest.start(2, Map.of("ALL_PROXY", "socks5://" + creds + "127.0.0.1:"
                         + socks.port()))) {
                HttpResponse<String> r = p.chat();
                assertEquals(502, r.statusCode(), r.body());
                assertEquals("false", r.headers().firstValue("x-should-retry").orElse(null), creds);
                assertEquals(creds.isEmpty() ? 0 : 1, socks.refusals.size(), creds + socks.refusals);
                assertEquals(0, p.upstream.requestCount());
            }
        }
    }

    /**
     * Contract §15: a dead base URL among several, behind a forwarding proxy. The proxy cannot
     * connect and says so in its own 503 (squid's X-Squid-Error: ERR_CONNECT_FAIL): that is a
     * connect failure, as the same proxy's 503 to CONNECT is, and the request moves to the next
     * base URL with the same key. It was taken for the upstream's 5xx: retried on the dead URL,
     * every key tried, and the backup URL never used.
     */
    @Test
    void aProxysCannotConnectAnswerMovesTheRequestToTheNextBaseUrl() throws Exception {
        int dead;
        try (java.net.ServerSocket s = new java.net.ServerSocket(0)) {
            dead = s.getLocalPort();
        }
        try (TestProxy proxy = new TestProxy(TestProxy.Kind.HTTP, null, null);
             MockUpstream second = new MockUpstream()) {
            second.otherwise(MockUpstream.json(200, OK));
            String first = "http://127.0.0.1:" + dead + "/v1";
            try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of("MEGALLM_BASE_URL", first + "," + second.baseUrl(),
                    "HTTP_PROXY", "http://127.0.0.1:" + proxy.port()))) {
                HttpResponse<String> r = p.chat();
                assertEquals(200, r.statusCode(), r.body());
                assertEquals(OK, r.body());
                assertEquals(List.of(first + "/chat/completions"), proxy.unreachable, "one try of the dead URL");
                assertEquals(1, second.requestCount());
                for (io.megallm.proxy.key.ApiKey k : p.server.keys().keys()) {
                    assertEquals("available", k.state().kind().name().toLowerCase(), "no key's fault");
                }
                assertTrue(p.get("/health").body().contains("{\"url\":\"" + first + "\",\"state\":\"paused\"}"));
            }
        }
    }
}
