package io.megallm.proxy.server.egress;

import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;

import java.net.ServerSocket;
import java.net.http.HttpResponse;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Contract §15 over real sockets: the upstream reached through an HTTP proxy (an http base URL's
 * requests forwarded in absolute form) or a SOCKS5 proxy,
 * with and without credentials, NO_PROXY, and a dead proxy that is a connect failure, no key's fault.
 */
class EgressProxyTest {

    private static final String OK = "{\"id\":\"through\"}";

    private static ProxyUnderTest start(Map<String, String> env) throws Exception {
        ProxyUnderTest p = ProxyUnderTest.start(2, env);
        p.upstream.otherwise(MockUpstream.json(200, OK));
        return p;
    }

    /** The mock's base URL as "localhost" (a name, so that socks5 and socks5h differ). */
    private static Map<String, String> via(String var, String proxyUrl) {
        Map<String, String> env = new HashMap<>();
        env.put(var, proxyUrl);
        return env;
    }

    /**
     * An http base URL through an HTTP proxy: requests in absolute form, with the proxy's
     * credentials on each, as httpx and curl send them. (A CONNECT tunnel, as before, was refused
     * by squid's and tinyproxy's stock rules for any port but 443.)
     */
    @Test
    void anHttpBaseUrlIsForwardedByAnHttpProxyInAbsoluteFormWithCredentials() throws Exception {
        try (TestProxy proxy = new TestProxy(TestProxy.Kind.HTTP, "alice", "s3cret");
             ProxyUnderTest p = start(via("HTTP_PROXY", "http://alice:s3cret@127.0.0.1:" + proxy.port()))) {
            HttpResponse<String> r = p.chat();
            assertEquals(200, r.statusCode(), r.body());
            assertEquals(OK, r.body());
            String target = "http://127.0.0.1:" + p.upstream.port() + "/v1/chat/completions";
            assertEquals(List.of("POST " + target + " HTTP/1.1"), proxy.forwarded);
            assertTrue(proxy.destinations.isEmpty(), "no CONNECT: " + proxy.destinations);
            assertTrue(proxy.refusals.isEmpty(), "the credentials went with the request: " + proxy.refusals);
            MockUpstream.Received got = p.upstream.take();
            assertEquals("/v1/chat/completions", got.uri());
            assertEquals("127.0.0.1:" + p.upstream.port(), got.headers().get("Host"));
            assertTrue(got.headers().get("Authorization").startsWith("Bearer "), "the pool key, as without a proxy");
            assertTrue(p.logLines().stream().anyMatch(l -> l.contains("egress_proxy=http://alice:***@127.0.0.1:")),
                    "the start-up summary names the proxy, password masked");
            assertFalse(p.logLines().stream().anyMatch(l -> l.contains("s3cret")), "the proxy password in a log line");
            // The connection to the proxy is pooled and reused like any other.
            assertEquals(200, p.chat().statusCode());
            assertEquals(List.of("POST " + target + " HTTP/1.1", "POST " + target + " HTTP/1.1"), proxy.forwarded);
            assertEquals(1, p.upstream.connectionsOpened(), "one connection through the proxy, kept alive");
        }
    }

    /** The client's own Proxy-Authorization is hop-by-hop: only the operator's credentials reach the proxy. */
    @Test
    void aClientsProxyAuthorizationNeverReachesTheProxy() throws Exception {
        try (TestProxy proxy = new TestProxy(TestProxy.Kind.HTTP, "alice", "s3cret");
             ProxyUnderTest p = start(via("HTTP_PROXY", "http://127.0.0.1:" + proxy.port()))) {
            // A raw socket: the JDK's client drops Proxy-Authorization on a direct connection itself.
            String body = "{\"model\":\"m\"}";
            String answer;
            try (java.net.Socket s = new java.net.Socket("127.0.0.1", p.port())) {
                s.setSoTimeout(30_000);
                s.getOutputStream().write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        + "Proxy-Authorization: Basic " + java.util.Base64.getEncoder().encodeToString(
                                "alice:s3cret".getBytes(java.nio.charset.StandardCharsets.UTF_8))
                        + "\r\nContent-Length: " + body.length() + "\r\nConnection: close\r\n\r\n" + body)
                        .getBytes(java.nio.charset.StandardCharsets.US_ASCII));
                answer = new String(s.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
            }
            assertTrue(answer.startsWith("HTTP/1.1 502 "), "the proxy wants credentials the operator did not give: " + answer);
            assertEquals(1, proxy.refusals.size(), proxy.refusals.toString());
            assertEquals(0, p.upstream.requestCount());
        }
    }

    @Test
    void wrongProxyCredentialsAreAConnectFailureAndNoKeyIsBlamed() throws Exception {
        try (TestProxy proxy = new TestProxy(TestProxy.Kind.HTTP, "alice", "s3cret");
             ProxyUnderTest p = start(Map.of("HTTP_PROXY", "http://alice:wrong@127.0.0.1:" + proxy.port(),
                     "MEGALLM_MAX_RETRIES", "1"))) {
            HttpResponse<String> r = p.chat();
            assertEquals(502, r.statusCode(), r.body());
            assertTrue(r.body().contains("\"code\":\"upstream_unreachable\""), r.body());
            assertEquals(0, p.upstream.requestCount());
            // The egress audit: squid saw 13 logins for one request, retries and key moves that
            // could not change the proxy's 407 (no key is sent before the tunnel stands).
            assertEquals(1, proxy.refusals.size(), "one login refused, no retry: " + proxy.refusals);
            assertEquals("false", r.headers().firstValue("x-should-retry").orElse(null));
            for (ApiKey k : p.server.keys().keys()) {
                assertEquals("available", k.state().kind().name().toLowerCase(), "a proxy failure is no key's fault");
            }
            List<String> warnings = p.logLines().stream().filter(l -> l.startsWith("WARN ")
                    && l.contains(" failed (")).toList();
            assertEquals(1, warnings.size(), p.logLines().toString());
            assertTrue(warnings.get(0).contains("407"), "app.log says why: " + warnings.get(0));
            assertFalse(warnings.get(0).contains("wrong"), "never the password: " + warnings.get(0));
        }
    }

    /** The proxy given by name is looked up for each connection, off the event loop, not once at start. */
    @Test
    void aProxyGivenByNameIsLookedUpAndUsed() throws Exception {
        try (TestProxy proxy = new TestProxy(TestProxy.Kind.HTTP, null, null);
             ProxyUnderTest p = start(via("HTTP_PROXY", "http://localhost:" + proxy.port()))) {
            assertEquals(200, p.chat().statusCode());
            assertEquals(1, proxy.forwarded.size());
        }
        try (ProxyUnderTest p = start(via("HTTP_PROXY", "http://no-such-proxy.invalid:3128"))) {
            HttpResponse<String> r = p.chat();
            assertEquals(502, r.statusCode(), "a name that does not resolve is a connect failure, not a failed start");
            assertTrue(p.logLines().stream().anyMatch(l -> l.startsWith("WARN ") && l.contains(" failed (")
                    && l.contains("no-such-proxy.invalid")), p.logLines().toString());
        }
    }

    @Test
    void socks5hSendsTheNameAndSocks5TheAddress() throws Exception {
        for (String scheme : new String[] {"socks5h", "socks5"}) {
            try (TestProxy proxy = new TestProxy(TestProxy.Kind.SOCKS5, "bob", "pw");
                 MockUpstream upstream = new MockUpstream()) {
                upstream.otherwise(MockUpstream.json(200, OK));
                Map<String, String> env = new HashMap<>();
                env.put("ALL_PROXY", scheme + "://bob:pw@127.0.0.1:" + proxy.port());
                env.put("MEGALLM_BASE_URL", "http://localhost:" + upstream.port() + "/v1");
                try (ProxyUnderTest p = ProxyUnderTest.start(1, env)) {
                    HttpResponse<String> r = p.chat();
                    assertEquals(200, r.statusCode(), scheme + ": " + r.body());
                    String seen = proxy.destinations.get(0);
                    if (scheme.equals("socks5h")) {
                        assertEquals("name localhost:" + upstream.port(), seen);
                    } else {
                        assertTrue(seen.startsWith("address "), seen);
                    }
                }
            }
        }
    }

    @Test
    void noProxyBypassesTheProxy() throws Exception {
        try (TestProxy proxy = new TestProxy(TestProxy.Kind.HTTP, null, null);
             ProxyUnderTest p = start(Map.of("http_proxy", "http://127.0.0.1:" + proxy.port(),
                     "NO_PROXY", "example.com,127.0.0.1"))) {
            assertEquals(200, p.chat().statusCode());
            assertTrue(proxy.destinations.isEmpty(), proxy.destinations.toString());
            assertTrue(p.logLines().stream().anyMatch(l -> l.contains("egress_proxy=none")));
        }
    }

    @Test
    void anHttpsProxyVariableDoesNotApplyToAnHttpBaseUrl() throws Exception {
        try (TestProxy proxy = new TestProxy(TestProxy.Kind.HTTP, null, null);
             ProxyUnderTest p = start(Map.of("HTTPS_PROXY", "http://127.0.0.1:" + proxy.port()))) {
            assertEquals(200, p.chat().statusCode());
            assertTrue(proxy.destinations.isEmpty());
        }
    }

    @Test
    void aDeadProxyIs502AfterTheRetryRulesAndNoKeyIsBlamed() throws Exception {
        int dead;
        try (ServerSocket s = new ServerSocket(0)) {
            dead = s.getLocalPort();
        }
        try (ProxyUnderTest p = start(Map.of("HTTP_PROXY", "socks5://127.0.0.1:" + dead, "MEGALLM_MAX_RETRIES", "1"))) {
            HttpResponse<String> r = p.chat();
            assertEquals(502, r.statusCode(), r.body());
            for (ApiKey k : p.server.keys().keys()) {
                assertEquals("available", k.state().kind().name().toLowerCase());
            }
        }
    }
}
