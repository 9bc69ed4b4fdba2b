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
 * Contract §15 over real sockets: the upstream reached through an HTTP CONNECT or SOCKS5 proxy,
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

    @Test
    void anHttpBaseUrlGoesThroughAnHttpConnectProxyWithCredentials() throws Exception {
        try (TestProxy proxy = new TestProxy(TestProxy.Kind.HTTP, "alice", "s3cret");
             ProxyUnderTest p = start(via("HTTP_PROXY", "http://alice:s3cret@127.0.0.1:" + proxy.port()))) {
            HttpResponse<String> r = p.chat();
            assertEquals(200, r.statusCode(), r.body());
            assertEquals(OK, r.body());
            assertEquals(List.of("127.0.0.1:" + p.upstream.port()), proxy.destinations);
            assertTrue(p.logLines().stream().anyMatch(l -> l.contains("egress_proxy=http://alice:***@127.0.0.1:")),
                    "the start-up summary names the proxy, password masked");
            assertFalse(p.logLines().stream().anyMatch(l -> l.contains("s3cret")), "the proxy password in a log line");
            // A pooled connection through the proxy is reused like any other.
            assertEquals(200, p.chat().statusCode());
            assertEquals(1, proxy.destinations.size());
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
            assertEquals(1, proxy.destinations.size());
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
