package io.megallm.proxy.server.relay;

import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.net.Socket;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.Map;

import static io.megallm.proxy.server.testing.KeyAsserts.assertKey;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Contract §6: what goes upstream and what comes back, over real sockets. */
class ForwardingTest {

    @Test
    void forwardsWithPoolKeyAndRelaysTheAnswerUnchanged() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            String body = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"h\\u00e9llo\"}]}";
            p.upstream.otherwise(MockUpstream.json(200, "{\"id\":\"x\",\"usage\":{\"total_tokens\":3}}",
                    Map.of("X-Upstream", "yes")));
            HttpResponse<String> r = p.send(HttpRequest.newBuilder(p.uri("/v1/chat/completions?foo=bar&x=1"))
                    .header("Content-Type", "application/json")
                    .header("Authorization", "Bearer client-supplied-key")
                    .header("X-Custom", "kept")
                    .POST(HttpRequest.BodyPublishers.ofString(body)));
            assertEquals(200, r.statusCode());
            assertEquals("{\"id\":\"x\",\"usage\":{\"total_tokens\":3}}", r.body());
            assertEquals("yes", r.headers().firstValue("x-upstream").orElse(null));
            String requestId = r.headers().firstValue("x-request-id").orElse(null);
            assertNotNull(requestId);

            MockUpstream.Received seen = p.upstream.take();
            assertEquals("POST", seen.method());
            assertEquals("/v1/chat/completions?foo=bar&x=1", seen.uri());
            assertKey(p.keys.get(0), seen.key(), null);
            assertEquals(body, seen.bodyText());
            assertEquals("kept", seen.headers().get("X-Custom"));
            assertEquals("127.0.0.1:" + p.upstream.port(), seen.headers().get("Host"));
            assertEquals("127.0.0.1", seen.headers().get("X-Forwarded-For"));
            assertEquals(requestId, seen.headers().get("X-Request-Id"));
        }
    }

    /**
     * A base URL without a path and a client path of just {@code /v1}: the upstream's request
     * target is "/" (origin form), not empty. It went out as {@code POST ?x=1 HTTP/1.1}, a request
     * line servers refuse with 400.
     */
    @Test
    void aBaseUrlWithoutPathAndAPathOfJustV1GiveTheTargetSlash() throws Exception {
        try (MockUpstream upstream = new MockUpstream();
             ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MEGALLM_BASE_URL", "http://127.0.0.1:" + upstream.port()))) {
            upstream.otherwise(MockUpstream.json(200, "{}"));
            assertEquals(200, p.post("/v1?x=1", "{\"model\":\"m\"}").statusCode());
            assertEquals("/?x=1", upstream.take().uri());
            assertEquals(200, p.post("/v1", "{\"model\":\"m\"}").statusCode());
            assertEquals("/", upstream.take().uri());
        }
    }

    @Test
    void keepsTheClientsRequestIdAndAppendsToForwardedFor() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            HttpResponse<String> r = p.send(HttpRequest.newBuilder(p.uri("/v1/models"))
                    .header("X-Request-Id", "req-abc-123")
                    .header("X-Forwarded-For", "203.0.113.9")
                    .GET());
            assertEquals(200, r.statusCode());
            assertEquals("req-abc-123", r.headers().firstValue("x-request-id").orElse(null));
            MockUpstream.Received seen = p.upstream.take();
            assertEquals("GET", seen.method());
            assertEquals("/v1/models", seen.uri());
            assertEquals("req-abc-123", seen.headers().get("X-Request-Id"));
            assertEquals("203.0.113.9, 127.0.0.1", seen.headers().get("X-Forwarded-For"));
        }
    }

    /**
     * README, decisions: names with {@code _} cross as they came (Nginx drops them by default);
     * the proxy's own fields are matched by exact name, so {@code X_Forwarded_For} is not taken
     * for, and does not replace, the {@code X-Forwarded-For} the proxy sets.
     */
    @Test
    void headerNamesWithUnderscoresCrossAndAreNotTakenForTheProxysOwn() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            String raw = RawHttp.exchange(p.port(), "GET /v1/models HTTP/1.1\r\nHost: x\r\n"
                    + "X_Custom_Field: kept\r\nX_Forwarded_For: 198.51.100.7\r\n\r\n");
            assertTrue(raw.startsWith("HTTP/1.1 200"), raw);
            MockUpstream.Received seen = p.upstream.take();
            assertEquals("kept", seen.headers().get("X_Custom_Field"));
            assertEquals("198.51.100.7", seen.headers().get("X_Forwarded_For"));
            assertEquals("127.0.0.1", seen.headers().get("X-Forwarded-For"));
        }
    }

    @Test
    void dropsHopByHopHeadersBothWays() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            p.upstream.otherwise(MockUpstream.json(200, "{}", Map.of("X-Drop-Me", "1", "Connection", "X-Drop-Me",
                    "Proxy-Foo", "bar")));
            String raw = RawHttp.exchange(p.port(), "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\n"
                    + "Connection: keep-alive, X-Secret-Hop\r\nX-Secret-Hop: hidden\r\nKeep-Alive: timeout=5\r\n"
                    + "Proxy-Authorization: Basic Zm9v\r\nTE: trailers\r\nUpgrade: h2c\r\n"
                    + "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
            assertTrue(raw.startsWith("HTTP/1.1 200"), raw);
            String lower = raw.toLowerCase();
            assertFalse(lower.contains("x-drop-me"), raw);
            assertFalse(lower.contains("proxy-foo"), raw);
            MockUpstream.Received seen = p.upstream.take();
            for (String h : new String[]{"X-Secret-Hop", "Keep-Alive", "Proxy-Authorization", "TE", "Upgrade"}) {
                assertFalse(seen.headers().contains(h), h + " was forwarded");
            }
            String connection = seen.headers().get("Connection");
            assertTrue(connection == null || !connection.toLowerCase().contains("x-secret-hop"));
        }
    }

    @Test
    void aHeadAnswerHasNoBodyAndTheConnectionCarriesOn() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            // A chunked head without a body, as an upstream answers HEAD.
            p.upstream.otherwise((ctx, req) -> ctx.pipeline().firstContext().writeAndFlush(Unpooled.copiedBuffer(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                    StandardCharsets.ISO_8859_1)));
            try (Socket s = RawHttp.connect(p.port())) {
                s.getOutputStream().write("HEAD /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
                        .getBytes(StandardCharsets.ISO_8859_1));
                InputStream in = s.getInputStream();
                String head = RawHttp.readHead(in, new ByteArrayOutputStream());
                assertTrue(head.startsWith("HTTP/1.1 200"), head);
                // Raw as well: the mock's own codec, which saw no answer to the HEAD, would drop this body.
                p.upstream.otherwise((ctx, req) -> ctx.pipeline().firstContext().writeAndFlush(Unpooled.copiedBuffer(
                        "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"data\":[]}", StandardCharsets.ISO_8859_1)));
                s.getOutputStream().write("GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
                        .getBytes(StandardCharsets.ISO_8859_1));
                // Had the HEAD answer carried a terminating chunk, it would come first here.
                String next = RawHttp.readResponse(in);
                assertTrue(next.startsWith("HTTP/1.1 200"), next);
                assertTrue(next.endsWith("{\"data\":[]}"), next);
            }
        }
    }

    @Test
    void otherStatusesAreRelayedAsIsWithoutRetry() throws Exception {
        for (int status : new int[]{400, 404, 422}) {
            try (ProxyUnderTest p = ProxyUnderTest.start(3, Map.of())) {
                String error = "{\"error\":{\"message\":\"bad " + status + "\"}}";
                p.upstream.otherwise(MockUpstream.json(status, error, Map.of("X-From", "upstream")));
                HttpResponse<String> r = p.chat();
                assertEquals(status, r.statusCode());
                assertEquals(error, r.body());
                assertEquals("upstream", r.headers().firstValue("x-from").orElse(null));
                assertEquals(1, p.upstream.requestCount(), "a " + status + " must not be retried");
            }
        }
    }
}
