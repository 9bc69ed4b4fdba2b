package io.megallm.proxy.server.relay;

import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.key.KeyState;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import io.netty.buffer.Unpooled;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.net.Socket;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

import static io.megallm.proxy.server.testing.KeyAsserts.assertKey;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 11, findings 7 to 10, over real sockets: what a client or an upstream can make the relay
 * do with a pool key (contract §6, §7, §9).
 */
class RelayHardeningTest {

    private static final String OK = "{\"id\":\"ok\"}";

    private static KeyState stateOf(ProxyUnderTest p, int i) {
        String masked = ApiKey.mask(p.keys.get(i));
        return p.server.keys().keys().stream().filter(k -> k.masked().equals(masked)).findFirst().orElseThrow().state();
    }

    // ---- finding 7: a request the upstream may have billed is sent once more at most ----------

    @Test
    void aResetAfterTheRequestWasSentIsSentOnceMoreAtMostWhateverTheRetrySettings() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(4, Map.of("MEGALLM_MAX_RETRIES", "3", "MAX_KEY_RETRIES", "3"))) {
            p.upstream.otherwise(MockUpstream.hangUp());
            HttpResponse<String> r = p.chat();
            assertEquals(502, r.statusCode(), r.body());
            assertTrue(r.body().contains("\"code\":\"upstream_unreachable\""), r.body());
            assertEquals(2, p.upstream.requestCount(), "sent once, then once more, never a third time");
            for (int i = 0; i < 4; i++) {
                assertEquals(KeyState.Kind.AVAILABLE, stateOf(p, i).kind(), "no key is blamed for a reset");
            }
        }
    }

    @Test
    void theResendSucceedsWhenTheUpstreamRecovers() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            int[] calls = {0};
            p.upstream.otherwise((ctx, req) -> {
                if (calls[0]++ == 0) {
                    ctx.close();
                } else {
                    MockUpstream.json(200, OK).respond(ctx, req);
                }
            });
            HttpResponse<String> r = p.chat();
            assertEquals(200, r.statusCode());
            assertEquals(OK, r.body());
            assertEquals(2, p.upstream.requestCount());
        }
    }

    /**
     * Audit: after a send that got no answer, the sends that did get one (a 5xx, a rejection) went
     * on by the retry and key rules. The once-more is once more in all, whatever it gets (§7).
     */
    @ParameterizedTest
    @ValueSource(ints = {500, 503, 401, 403, 429})
    void afterASendThatGotNoAnswerTheOneResendIsTheLastWhateverItsAnswer(int status) throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(4, Map.of("MEGALLM_MAX_RETRIES", "3", "MAX_KEY_RETRIES", "3"))) {
            p.upstream.otherwise(MockUpstream.sequence(MockUpstream.hangUp(),
                    MockUpstream.json(status, "{\"error\":{\"message\":\"second\"}}"), MockUpstream.json(200, OK)));
            HttpResponse<String> r = p.chat();
            assertEquals(status, r.statusCode(), r.body());
            assertEquals("{\"error\":{\"message\":\"second\"}}", r.body(), "the resend's answer, as it was");
            assertEquals(2, p.upstream.requestCount(), "sent once, then once more, never a third time");
        }
    }

    @Test
    void aResetThenServerErrorsStopsAtTheOneResend() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of("MEGALLM_MAX_RETRIES", "3", "MAX_KEY_RETRIES", "3"))) {
            p.upstream.otherwise(MockUpstream.sequence(MockUpstream.reset(), MockUpstream.json(500, "{\"error\":\"busy\"}")));
            HttpResponse<String> r = p.chat();
            assertEquals(500, r.statusCode(), r.body());
            assertEquals(2, p.upstream.requestCount());
        }
    }

    @Test
    void aSecondUnansweredSendAfterAnAnsweredResendNeverHappens() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of("MEGALLM_MAX_RETRIES", "3"))) {
            p.upstream.otherwise(MockUpstream.sequence(MockUpstream.hangUp(), MockUpstream.json(500, "{}"),
                    MockUpstream.hangUp(), MockUpstream.json(200, OK)));
            assertEquals(500, p.chat().statusCode());
            assertEquals(2, p.upstream.requestCount());
        }
    }

    @Test
    void sendsBeforeTheUnansweredOneDoNotCountAgainstTheResend() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MEGALLM_MAX_RETRIES", "3"))) {
            p.upstream.otherwise(MockUpstream.sequence(MockUpstream.json(503, "{}"), MockUpstream.json(503, "{}"),
                    MockUpstream.hangUp(), MockUpstream.json(200, OK)));
            HttpResponse<String> r = p.chat();
            assertEquals(200, r.statusCode(), r.body());
            assertEquals(4, p.upstream.requestCount());
        }
    }

    @Test
    void explicitServerErrorsStillRetryAsConfigured() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MEGALLM_MAX_RETRIES", "3"))) {
            p.upstream.otherwise(MockUpstream.json(503, "{\"error\":\"busy\"}"));
            HttpResponse<String> r = p.chat();
            assertEquals(503, r.statusCode());
            // An explicit 503 says it was not processed: first attempt plus three retries.
            assertEquals(4, p.upstream.requestCount());
        }
    }

    // ---- finding 8: client headers cannot knock keys out; 403 is ambiguous --------------------

    @Test
    void clientCredentialAndAccountHeadersNeverReachTheUpstream() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            HttpResponse<String> r = p.send(HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                    .header("Content-Type", "application/json")
                    .header("x-api-key", "sk-client-own-key")
                    .header("api-key", "azure-style-key")
                    .header("OpenAI-Organization", "org-foreign")
                    .header("OpenAI-Project", "proj-foreign")
                    .header("X-Custom", "kept")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"m\"}")));
            assertEquals(200, r.statusCode());
            MockUpstream.Received seen = p.upstream.take();
            assertNull(seen.headers().get("x-api-key"));
            assertNull(seen.headers().get("api-key"));
            assertNull(seen.headers().get("openai-organization"));
            assertNull(seen.headers().get("openai-project"));
            assertEquals("kept", seen.headers().get("x-custom"));
            assertKey(p.keys.get(0), seen.key(), null);
        }
    }

    @Test
    void a403KeyIsBlamedOnlyWhenAnotherKeyAcceptsTheRequest() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of())) {
            p.upstream.on(p.keys.get(0), MockUpstream.json(403, "{\"error\":{\"message\":\"banned\"}}"));
            p.upstream.on(p.keys.get(1), MockUpstream.json(200, OK));
            assertEquals(200, p.chat().statusCode());
            assertEquals(KeyState.Kind.FAILED, stateOf(p, 0).kind());
            assertEquals("upstream 403", stateOf(p, 0).reason());
            assertEquals(KeyState.Kind.AVAILABLE, stateOf(p, 1).kind());
        }
    }

    @Test
    void aSecond403GoesToTheClientAndNeitherKeyIsBlamed() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(4, Map.of())) {
            p.upstream.otherwise(MockUpstream.json(403,
                    "{\"error\":{\"message\":\"model not allowed\"}}", Map.of("X-Why", "model")));
            HttpResponse<String> r = p.chat();
            assertEquals(403, r.statusCode());
            assertEquals("{\"error\":{\"message\":\"model not allowed\"}}", r.body());
            assertEquals("model", r.headers().firstValue("x-why").orElse(null));
            assertEquals(2, p.upstream.requestCount(), "no third key after a second 403");
            for (int i = 0; i < 4; i++) {
                assertEquals(KeyState.Kind.AVAILABLE, stateOf(p, i).kind(), "key " + i);
            }
        }
    }

    /**
     * Audit: [403, 422] failed the first key and relayed the 422. A 4xx from the next key is no
     * acceptance: a request for a model only some keys may use would take the others out.
     */
    @ParameterizedTest
    @ValueSource(ints = {400, 404, 422})
    void a403ThenAnotherKeysClientErrorIsRelayedAndNeitherKeyIsBlamed(int status) throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of())) {
            p.upstream.on(p.keys.get(0), MockUpstream.json(403, "{\"error\":{\"message\":\"tier\"}}"));
            p.upstream.on(p.keys.get(1), MockUpstream.json(status, "{\"error\":{\"message\":\"bad\"}}"));
            HttpResponse<String> r = p.chat();
            assertEquals(status, r.statusCode());
            assertEquals("{\"error\":{\"message\":\"bad\"}}", r.body());
            assertEquals(2, p.upstream.requestCount());
            assertEquals(KeyState.Kind.AVAILABLE, stateOf(p, 0).kind());
            assertEquals(KeyState.Kind.AVAILABLE, stateOf(p, 1).kind());
        }
    }

    @Test
    void a403ThenRunningOutOfKeysBlamesNobody() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of())) {
            p.upstream.on(p.keys.get(0), MockUpstream.json(403, "{}"));
            p.upstream.on(p.keys.get(1), MockUpstream.json(429, "{}", Map.of("Retry-After", "30")));
            HttpResponse<String> r = p.chat();
            assertEquals(429, r.statusCode());
            assertEquals(KeyState.Kind.AVAILABLE, stateOf(p, 0).kind());
        }
    }

    // ---- finding 9: nothing outside the base path is reached with a pool key ------------------

    @ParameterizedTest
    @ValueSource(strings = {"/v1/../admin", "/v1/./models", "/v1/%2e%2e/x", "/v1/%2E./x", "/v1/.%2e",
            "/v1/models/..", "/v1/a%2Fb", "/v1/a%2f..%2fb", "/v1/a\\..\\b", "/v1/a%5c..", "/v1/chat/%2e/x?q=1",
            // A fragment ends the path for some servers, a path parameter hides a dot-segment for others.
            "/v1/..#", "/v1/%2e%2e#", "/v1/models#x", "/v1/..;/x", "/v1/.;a/x", "/v1/%2e%2e;x/y", "/v1/a;b%2f/c"})
    void dotSegmentsAndEncodedSlashesAre400AndNeverForwarded(String target) throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            String answer = raw(p.port(), "GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            assertTrue(answer.startsWith("HTTP/1.1 400"), answer);
            assertTrue(answer.contains("{\"error\":{\"message\":"), answer);
            assertEquals(0, p.upstream.requestCount());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"/v1/models", "/v1/files/file...txt", "/v1/a.b/c", "/v1/models?path=../x", "/v1/.well",
            "/v1/a;b/c", "/v1/files/x;v=1.txt", "/v1/..a;b/c"})
    void pathsWithoutDotSegmentsAreForwarded(String target) throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            String answer = raw(p.port(), "GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            assertTrue(answer.startsWith("HTTP/1.1 200"), answer);
            assertEquals(target, p.upstream.take().uri());
        }
    }

    // ---- finding 10: a relayed rejection never shows a pool key -------------------------------
    // (400, 404, 422 and 409 since 2026-12-07: an error answer that is relayed without failover
    // echoed the key in full; contract §4 and §9 say no response carries one.)

    @ParameterizedTest
    @ValueSource(ints = {401, 402, 429, 400, 404, 409, 422})
    void aPoolKeyEchoedInARelayedErrorAnswerIsMasked(int status) throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of())) {
            for (String key : p.keys) {
                p.upstream.on(key, MockUpstream.json(status,
                        "{\"error\":{\"message\":\"Incorrect API key provided: " + key + ". Key " + key + " again.\"}}",
                        Map.of("WWW-Authenticate", "Bearer error=\"invalid_token\", key=\"" + key + "\"",
                                "X-Echo-Key", key, "X-" + key, "1", "X-Other", "kept")));
            }
            HttpResponse<String> r = p.chat();
            assertEquals(status, r.statusCode());
            for (String key : p.keys) {
                assertFalse(r.body().contains(key), "full key in the client's answer: " + r.body());
                r.headers().map().forEach((name, values) -> {
                    assertFalse(name.contains(key), "full key in a header name: " + name);
                    values.forEach(v -> assertFalse(v.contains(key), "full key in " + name + ": " + v));
                });
            }
            List<String> tried = p.upstream.all().stream().map(MockUpstream.Received::key).toList();
            String last = tried.get(tried.size() - 1);
            String masked = ApiKey.mask(last);
            assertEquals("{\"error\":{\"message\":\"Incorrect API key provided: " + masked + ". Key " + masked
                    + " again.\"}}", r.body());
            // A header is single bytes: the mask's ellipsis goes out as three dots there.
            String maskedAscii = masked.replace("\u2026", "...");
            assertEquals("Bearer error=\"invalid_token\", key=\"" + maskedAscii + "\"",
                    r.headers().firstValue("www-authenticate").orElse(null));
            assertEquals(maskedAscii, r.headers().firstValue("x-echo-key").orElse(null));
            assertEquals("kept", r.headers().firstValue("x-other").orElse(null));
            assertEquals(Integer.toString(r.body().getBytes(StandardCharsets.UTF_8).length),
                    r.headers().firstValue("content-length").orElse(null));
        }
    }

    /**
     * Python audit (2026-12-07): an upstream that compresses although asked for identity hid the
     * key from the mask inside a gzip 401, and the client got it in full. A gzip or deflate body is
     * now decompressed (at most 1 MiB) and masked; one that cannot be read goes out as its status
     * in the error shape.
     */
    @ParameterizedTest
    @ValueSource(strings = {"gzip", "x-gzip", "deflate", "raw-deflate"})
    void aPoolKeyInACompressedErrorAnswerIsMaskedToo(String coding) throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MAX_KEY_RETRIES", "0"))) {
            String key = p.keys.get(0);
            String body = "{\"error\":{\"message\":\"Incorrect API key provided: " + key + "\"}}";
            p.upstream.otherwise(encoded(401, coding.equals("raw-deflate") ? "deflate" : coding,
                    compress(coding, body.getBytes(StandardCharsets.UTF_8))));
            HttpResponse<String> r = p.chat();
            assertEquals(401, r.statusCode());
            assertEquals("{\"error\":{\"message\":\"Incorrect API key provided: " + ApiKey.mask(key) + "\"}}", r.body());
            assertTrue(r.headers().firstValue("content-encoding").isEmpty(), "passed on decompressed");
            assertEquals(Integer.toString(r.body().getBytes(StandardCharsets.UTF_8).length),
                    r.headers().firstValue("content-length").orElse(null));
        }
    }

    @Test
    void aCompressedErrorAnswerThatCannotBeCheckedGoesOutAsItsStatusInTheErrorShape() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MAX_KEY_RETRIES", "0"))) {
            String key = p.keys.get(0);
            byte[] plain = ("{\"error\":{\"message\":\"" + key + "\"}}").getBytes(StandardCharsets.UTF_8);
            byte[] gzip = compress("gzip", plain);
            Map<String, byte[]> cases = new java.util.LinkedHashMap<>();
            cases.put("br", plain);
            cases.put("gzip, br", gzip);
            cases.put("gzip", java.util.Arrays.copyOf(gzip, gzip.length - 9));
            for (Map.Entry<String, byte[]> c : cases.entrySet()) {
                p.upstream.otherwise(encoded(400, c.getKey(), c.getValue()));
                HttpResponse<String> r = p.chat();
                assertEquals(400, r.statusCode(), c.getKey());
                assertTrue(r.body().contains("\"code\":\"upstream_answer_unreadable\""), c.getKey() + ": " + r.body());
                assertFalse(r.body().contains(key), r.body());
                assertTrue(r.headers().firstValue("content-encoding").isEmpty(), c.getKey());
            }
            // 5 MiB of one byte, a few KB compressed: given up at 1 MiB, never inflated whole.
            p.upstream.otherwise(encoded(401, "gzip", compress("gzip", new byte[5 << 20])));
            HttpResponse<String> bomb = p.chat();
            assertEquals(401, bomb.statusCode());
            assertTrue(bomb.body().contains("\"code\":\"upstream_answer_too_large\""), bomb.body());
        }
    }

    private static MockUpstream.Behavior encoded(int status, String coding, byte[] body) {
        return (ctx, req) -> {
            FullHttpResponse response = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
                    HttpResponseStatus.valueOf(status), Unpooled.wrappedBuffer(body));
            response.headers().set("Content-Type", "application/json").set("Content-Encoding", coding);
            HttpUtil.setContentLength(response, body.length);
            ctx.writeAndFlush(response);
        };
    }

    private static byte[] compress(String coding, byte[] plain) throws java.io.IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (java.io.OutputStream z = switch (coding) {
            case "gzip", "x-gzip" -> new java.util.zip.GZIPOutputStream(out);
            case "deflate" -> new java.util.zip.DeflaterOutputStream(out);
            default -> new java.util.zip.DeflaterOutputStream(out, new java.util.zip.Deflater(6, true));
        }) {
            z.write(plain);
        }
        return out.toByteArray();
    }

    /**
     * No local route takes a body: a head that announces one is answered at once, before a byte
     * of it is kept (else anyone could make the proxy hold MAX_REQUEST_BODY a connection on
     * /health or a 404), and the connection closes since the body is left unread.
     */
    @Test
    void aBodyAnnouncedToALocalRouteIsNeverWaitedForNorKept() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("CLIENT_BODY_TIMEOUT", "30"))) {
            String health = raw(p.port(), "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 4194304\r\n\r\n");
            assertTrue(health.startsWith("HTTP/1.1 405"), health);
            assertTrue(health.toLowerCase(java.util.Locale.ROOT).contains("connection: close"), health);
            String missing = raw(p.port(), "PUT /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
            assertTrue(missing.startsWith("HTTP/1.1 404"), missing);
            assertEquals(0, p.upstream.requestCount());
        }
    }

    @Test
    void anAbsoluteFormTargetIsServedAsItsPath() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            String health = raw(p.port(), "GET http://127.0.0.1:" + p.port() + "/health HTTP/1.1\r\nHost: x\r\n"
                    + "Connection: close\r\n\r\n");
            assertTrue(health.startsWith("HTTP/1.1 200"), health);
            String models = raw(p.port(), "GET http://api.example/v1/models?limit=2 HTTP/1.1\r\nHost: x\r\n"
                    + "Connection: close\r\n\r\n");
            assertTrue(models.startsWith("HTTP/1.1 200"), models);
            assertEquals("/v1/models?limit=2", p.upstream.take().uri());
            String escape = raw(p.port(), "GET http://api.example/v1/../admin/keys HTTP/1.1\r\nHost: x\r\n"
                    + "Connection: close\r\n\r\n");
            assertTrue(escape.startsWith("HTTP/1.1 400"), escape);
            assertEquals(1, p.upstream.requestCount());
        }
    }

    @Test
    void aPoolKeyInARelayedRejectionsStatusLineIsMasked() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            String key = p.keys.get(0);
            p.upstream.on(key, (ctx, req) -> {
                FullHttpResponse r = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
                        new HttpResponseStatus(401, "Invalid key " + key), Unpooled.EMPTY_BUFFER);
                HttpUtil.setContentLength(r, 0);
                ctx.writeAndFlush(r);
            });
            String answer = raw(p.port(), "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            assertTrue(answer.startsWith("HTTP/1.1 401 Invalid key " + ApiKey.mask(key).replace("\u2026", "...") + "\r\n"),
                    answer.lines().findFirst().orElse(""));
            assertFalse(answer.contains(key));
        }
    }

    private static String raw(int port, String request) throws Exception {
        try (Socket s = new Socket("127.0.0.1", port)) {
            s.setSoTimeout(10_000);
            s.getOutputStream().write(request.getBytes(StandardCharsets.ISO_8859_1));
            s.getOutputStream().flush();
            InputStream in = s.getInputStream();
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[8192];
            for (int n; (n = in.read(buf)) > 0; ) {
                out.write(buf, 0, n);
            }
            return out.toString(StandardCharsets.ISO_8859_1);
        }
    }
}
