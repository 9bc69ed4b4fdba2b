package io.megallm.proxy.server.admin;

import io.megallm.proxy.server.keys.Json;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.Map;

import static io.megallm.proxy.server.testing.KeyAsserts.assertKey;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Contract §5/§6/§9: who may call the admin routes and the relay, and the errors for everyone else. */
class AdminAccessTest {

    private static final String TOKEN = "s3cret-admin-token-value";

    private static HttpResponse<String> get(ProxyUnderTest p, URI uri, String... headers) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(uri).GET();
        if (headers.length > 0) {
            b.headers(headers);
        }
        return p.send(b);
    }

    private static HttpResponse<String> chat(ProxyUnderTest p, String... headers) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(
                        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"));
        if (headers.length > 0) {
            b.headers(headers);
        }
        return p.send(b);
    }

    private static void assertNoSecretIn(ProxyUnderTest p, HttpResponse<String> r, String... secrets) {
        for (String s : secrets) {
            assertFalse(r.body().contains(s), "a secret in the answer: " + r.body());
            r.headers().map().forEach((name, values) -> values.forEach(
                    v -> assertFalse(v.contains(s), "a secret in header " + name)));
            for (String line : p.logLines()) {
                assertFalse(line.contains(s), "a secret in the log: " + line);
            }
        }
    }

    // ---- ADMIN_TOKEN ---------------------------------------------------------------------------

    @Test
    void adminTokenIsRequiredWhenSet() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of("ADMIN_TOKEN", TOKEN))) {
            HttpResponse<String> none = get(p, p.uri("/admin/keys"));
            assertEquals(401, none.statusCode(), none.body());
            Json.assertErrorShape(none.body());
            // RFC 9110 §15.5.2 (audit, 2026-12-07): a 401 names the scheme.
            assertEquals("Bearer", none.headers().firstValue("www-authenticate").orElse(null));

            HttpResponse<String> notBearer = get(p, p.uri("/admin/keys"), "Authorization", "Basic " + TOKEN);
            assertEquals(401, notBearer.statusCode(), notBearer.body());
            Json.assertErrorShape(notBearer.body());

            HttpResponse<String> wrong = get(p, p.uri("/admin/keys"), "Authorization", "Bearer not-the-token");
            assertEquals(403, wrong.statusCode(), wrong.body());
            Json.assertErrorShape(wrong.body());

            HttpResponse<String> prefix = get(p, p.uri("/admin/keys"), "Authorization",
                    "Bearer " + TOKEN.substring(0, TOKEN.length() - 1));
            assertEquals(403, prefix.statusCode(), prefix.body());

            HttpResponse<String> right = get(p, p.uri("/admin/keys"), "Authorization", "Bearer " + TOKEN);
            assertEquals(200, right.statusCode(), right.body());
            assertTrue(Json.object(right.body()).containsKey("keys"), right.body());

            HttpResponse<String> reset = p.send(HttpRequest.newBuilder(p.uri("/admin/reset-failed-keys"))
                    .POST(HttpRequest.BodyPublishers.noBody()));
            assertEquals(401, reset.statusCode(), reset.body());
            HttpResponse<String> reload = p.send(HttpRequest.newBuilder(p.uri("/admin/reload-keys"))
                    .header("Authorization", "Bearer wrong").POST(HttpRequest.BodyPublishers.noBody()));
            assertEquals(403, reload.statusCode(), reload.body());
            HttpResponse<String> reloadOk = p.send(HttpRequest.newBuilder(p.uri("/admin/reload-keys"))
                    .header("Authorization", "Bearer " + TOKEN).POST(HttpRequest.BodyPublishers.noBody()));
            assertEquals(200, reloadOk.statusCode(), reloadOk.body());

            for (HttpResponse<String> r : new HttpResponse[]{none, notBearer, wrong, prefix, right, reset, reload}) {
                assertNoSecretIn(p, r, TOKEN);
            }
        }
    }

    /**
     * Review (2026-12-08): /health said no-store, but the admin answers (pool state, usage per
     * client, the metrics) said nothing, so a browser or a cache in between could keep them on disk.
     */
    @Test
    void adminAnswersAreNeverStored() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("ADMIN_TOKEN", TOKEN))) {
            for (String path : new String[]{"/admin/keys", "/admin/usage", "/metrics"}) {
                HttpResponse<String> r = get(p, p.uri(path), "Authorization", "Bearer " + TOKEN);
                assertEquals(200, r.statusCode(), path + ": " + r.body());
                assertEquals("no-store", r.headers().firstValue("cache-control").orElse(null), path);
            }
            for (String path : new String[]{"/admin/reload-keys", "/admin/reset-failed-keys"}) {
                HttpResponse<String> r = p.send(HttpRequest.newBuilder(p.uri(path))
                        .header("Authorization", "Bearer " + TOKEN).POST(HttpRequest.BodyPublishers.noBody()));
                assertEquals(200, r.statusCode(), path + ": " + r.body());
                assertEquals("no-store", r.headers().firstValue("cache-control").orElse(null), path);
            }
        }
    }

    @Test
    void healthStaysPublicWhenAdminTokenIsSet() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("ADMIN_TOKEN", TOKEN, "PROXY_API_KEYS", "ck-one"))) {
            assertEquals(200, p.get("/health").statusCode());
        }
    }

    @Test
    void withoutAdminTokenLoopbackClientsAreAdmitted() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of())) {
            HttpResponse<String> r = p.get("/admin/keys");
            assertEquals(200, r.statusCode(), r.body());
            assertTrue(p.logLines().stream().anyMatch(l -> l.startsWith("WARN ") && l.contains("ADMIN_TOKEN")),
                    "an unset ADMIN_TOKEN is warned about at start");
        }
    }

    @Test
    void withoutAdminTokenANonLoopbackClientIsRefused() {
        // Traffic may only go to loopback here, so the non-loopback peer is made at the pipeline level.
        String raw = PipelineClient.exchange(null, "203.0.113.7", "GET /admin/keys HTTP/1.1\r\nHost: x\r\n\r\n");
        assertTrue(raw.startsWith("HTTP/1.1 403"), raw);
        Json.assertErrorShape(raw.substring(raw.indexOf("\r\n\r\n") + 4));
        String reload = PipelineClient.exchange(null, "203.0.113.7",
                "POST /admin/reload-keys HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        assertTrue(reload.startsWith("HTTP/1.1 403"), reload);
        assertTrue(PipelineClient.exchange(null, "127.0.0.1", "GET /admin/keys HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .startsWith("HTTP/1.1 200"), "loopback is admitted");
    }

    /**
     * A browser on this machine is a loopback client too: a page of another site (a cross-site
     * form, or its own name pointed at 127.0.0.1) must not reach the admin routes without a token.
     */
    @Test
    void withoutAdminTokenABrowserPageOfAnotherSiteIsRefused() {
        String crossSite = PipelineClient.exchange(null, "127.0.0.1", "POST /admin/reset-failed-keys HTTP/1.1\r\n"
                + "Host: localhost:8000\r\nOrigin: http://evil.example\r\nSec-Fetch-Site: cross-site\r\n"
                + "Content-Length: 0\r\n\r\n");
        assertTrue(crossSite.startsWith("HTTP/1.1 403") && crossSite.contains("admin_cross_site"), crossSite);
        String rebound = PipelineClient.exchange(null, "127.0.0.1", "GET /admin/keys HTTP/1.1\r\n"
                + "Host: rebind.evil.example:8000\r\nSec-Fetch-Site: same-origin\r\n\r\n");
        assertTrue(rebound.startsWith("HTTP/1.1 403"), rebound);
        String oldBrowser = PipelineClient.exchange(null, "127.0.0.1", "POST /admin/reload-keys HTTP/1.1\r\n"
                + "Host: 127.0.0.1:8000\r\nOrigin: http://evil.example\r\nContent-Length: 0\r\n\r\n");
        assertTrue(oldBrowser.startsWith("HTTP/1.1 403"), oldBrowser);

        assertTrue(PipelineClient.exchange(null, "127.0.0.1", "GET /admin/keys HTTP/1.1\r\nHost: localhost:8000\r\n"
                + "Sec-Fetch-Site: same-origin\r\nOrigin: http://localhost:8000\r\n\r\n").startsWith("HTTP/1.1 200"),
                "the dashboard's own fetches");
        assertTrue(PipelineClient.exchange(null, "127.0.0.1", "GET /admin/ HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
                + "Sec-Fetch-Site: none\r\n\r\n").startsWith("HTTP/1.1 200"), "an address typed in the bar");
    }

    /**
     * Audit (2026-12-07): the Host check ran only when the browser sent Origin or Sec-Fetch-Site,
     * which browsers before those headers never send on a same-origin GET (a rebinding page's
     * read of /admin/keys); and an Origin without a scheme ("a", "") gave a 500 and a stack trace.
     * (This test's loopback request used "Host: x" before, which the README's rule refuses.)
     */
    @ParameterizedTest
    @ValueSource(strings = {"Host: rebind.evil.example:8000\r\n", "Host: x\r\n",
            "Host: localhost:8000\r\nOrigin: a\r\n", "Host: localhost:8000\r\nOrigin: \r\n",
            "Host: localhost:8000\r\nOrigin: null\r\n"})
    void withoutAdminTokenALoopbackRequestForAnotherHostOrFromAnOddOriginIsRefused(String headers) {
        String answer = PipelineClient.exchange(null, "127.0.0.1", "GET /admin/keys HTTP/1.1\r\n" + headers + "\r\n");
        assertTrue(answer.startsWith("HTTP/1.1 403") && answer.contains("admin_cross_site"), answer);
    }

    @ParameterizedTest
    @ValueSource(strings = {"localhost:8000", "127.0.0.1", "127.0.0.1:8000", "[::1]:8000", "0.0.0.0:8000",
            "app.localhost:8000"})
    void withoutAdminTokenALoopbackRequestForALoopbackNameOrAnAddressIsAdmitted(String host) {
        assertTrue(PipelineClient.exchange(null, "127.0.0.1", "GET /admin/keys HTTP/1.1\r\nHost: " + host + "\r\n\r\n")
                .startsWith("HTTP/1.1 200"), host);
    }

    @Test
    void withAdminTokenANonLoopbackClientWithTheTokenIsAdmitted() {
        assertTrue(PipelineClient.exchange(TOKEN, "203.0.113.7", "GET /admin/keys HTTP/1.1\r\nHost: x\r\n\r\n")
                .startsWith("HTTP/1.1 401"));
        assertTrue(PipelineClient.exchange(TOKEN, "203.0.113.7", "GET /admin/keys HTTP/1.1\r\nHost: x\r\n"
                + "Authorization: Bearer " + TOKEN + "\r\n\r\n").startsWith("HTTP/1.1 200"));
    }

    @Test
    void withoutAdminTokenALoopbackRequestRelayedByAProxyIsRefused() throws Exception {
        // Nginx on the same host connects from loopback on behalf of anyone on the internet.
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            HttpResponse<String> r = get(p, p.uri("/admin/keys"), "X-Forwarded-For", "198.51.100.4");
            assertEquals(403, r.statusCode(), r.body());
            Json.assertErrorShape(r.body());
            HttpResponse<String> real = get(p, p.uri("/admin/keys"), "X-Real-IP", "198.51.100.4");
            assertEquals(403, real.statusCode(), real.body());
        }
    }

    // ---- PROXY_API_KEYS ----------------------------------------------------------------------------

    @Test
    void clientKeyIsRequiredBeforeAnyPoolKeyIsUsed() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("PROXY_API_KEYS", "ck-one,ck-two"))) {
            HttpResponse<String> none = chat(p);
            assertEquals(401, none.statusCode(), none.body());
            Json.assertErrorShape(none.body());
            assertEquals("Bearer", none.headers().firstValue("www-authenticate").orElse(null));

            HttpResponse<String> wrong = chat(p, "Authorization", "Bearer ck-three");
            assertEquals(401, wrong.statusCode(), wrong.body());
            Json.assertErrorShape(wrong.body());

            HttpResponse<String> wrongApiKey = chat(p, "x-api-key", "ck-on");
            assertEquals(401, wrongApiKey.statusCode(), wrongApiKey.body());

            HttpResponse<String> poolKey = chat(p, "Authorization", "Bearer " + p.keys.get(0));
            assertEquals(401, poolKey.statusCode(), "a pool key is not a client key");

            HttpResponse<String> models = p.get("/v1/models");
            assertEquals(401, models.statusCode(), "every /v1/** route follows PROXY_API_KEYS");

            assertEquals(0, p.upstream.requestCount(), "nothing may reach the upstream without a client key");
            assertNoSecretIn(p, none, "ck-one", "ck-two");
            assertNoSecretIn(p, wrong, "ck-one", "ck-two");
        }
    }

    @Test
    void bearerClientKeyIsReplacedByThePoolKey() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("PROXY_API_KEYS", "ck-one,ck-two"))) {
            HttpResponse<String> r = chat(p, "Authorization", "Bearer ck-two");
            assertEquals(200, r.statusCode(), r.body());
            MockUpstream.Received seen = p.upstream.take();
            assertKey(p.keys.get(0), seen.key(), null);
            assertKey("Bearer " + p.keys.get(0), seen.headers().get("Authorization"), null);
            assertEquals(1, seen.headers().getAll("Authorization").size());
            seen.headers().forEach(h -> assertFalse(h.getValue().contains("ck-two"),
                    "the client key went upstream in " + h.getKey()));
        }
    }

    @Test
    void xApiKeyClientKeyIsAcceptedAndNotForwarded() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("PROXY_API_KEYS", "ck-one,ck-two"))) {
            HttpResponse<String> r = chat(p, "x-api-key", "ck-one");
            assertEquals(200, r.statusCode(), r.body());
            MockUpstream.Received seen = p.upstream.take();
            assertKey(p.keys.get(0), seen.key(), null);
            assertFalse(seen.headers().contains("x-api-key"), "x-api-key was forwarded upstream");
            seen.headers().forEach(h -> assertFalse(h.getValue().contains("ck-one"),
                    "the client key went upstream in " + h.getKey()));
        }
    }

    @Test
    void withoutProxyApiKeysAnyClientMayCallAndAWarningIsLogged() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            assertEquals(200, p.chat().statusCode());
            assertTrue(p.logLines().stream().anyMatch(l -> l.startsWith("WARN ") && l.contains("PROXY_API_KEYS")),
                    p.logLines().toString());
        }
    }

    // ---- routes ------------------------------------------------------------------------------------

    @Test
    void unknownRouteIs404WithTheErrorShape() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            for (String path : new String[]{"/nope", "/", "/v2/chat/completions", "/admin/unknown", "/admin/dashboard.png",
                    "/healthz", "/v1x"}) {
                HttpResponse<String> r = p.get(path);
                assertEquals(404, r.statusCode(), path + ": " + r.body());
                Map<String, Object> error = Json.assertErrorShape(r.body());
                assertTrue(r.headers().firstValue("content-type").orElse("").startsWith("application/json"));
                assertFalse(((String) error.get("message")).contains("/tmp"), r.body());
            }
            assertEquals(0, p.upstream.requestCount());
        }
    }

    @Test
    void wrongMethodIs405WithTheErrorShape() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            HttpResponse<String> r = p.post("/health", "{}");
            assertEquals(405, r.statusCode(), r.body());
            Json.assertErrorShape(r.body());
            // GET routes answer HEAD too, so Allow names both (audit, 2026-12-07; "GET" before).
            assertEquals("GET, HEAD", r.headers().firstValue("allow").orElse(null));

            HttpResponse<String> del = p.send(HttpRequest.newBuilder(p.uri("/health")).DELETE());
            assertEquals(405, del.statusCode(), del.body());

            HttpResponse<String> getReload = p.get("/admin/reload-keys");
            assertEquals(405, getReload.statusCode(), getReload.body());
            Json.assertErrorShape(getReload.body());
            assertEquals("POST", getReload.headers().firstValue("allow").orElse(null));

            HttpResponse<String> postKeys = p.post("/admin/keys", "{}");
            assertEquals(405, postKeys.statusCode(), postKeys.body());
        }
    }
}
