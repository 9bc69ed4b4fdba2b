package io.megallm.proxy.server.deploy;

import io.megallm.proxy.server.keys.Json;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * docker/nginx/megallm-proxy.conf as shipped, run by this machine's nginx in front of an
 * in-process proxy: what the front does to requests the proxy itself would take or refuse.
 */
@Timeout(value = 2, unit = TimeUnit.MINUTES)
class NativeNginxFrontTest {

    private static final String OK = "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\"}";

    private static ProxyUnderTest proxy;
    private static NativeNginx nginx;
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();

    @BeforeAll
    static void start() throws Exception {
        assumeTrue(NativeNginx.available(), "no nginx binary at " + NativeNginx.BINARY);
        proxy = ProxyUnderTest.start(1, Map.of());
        proxy.upstream.otherwise(MockUpstream.json(200, OK));
        nginx = NativeNginx.site(proxy.port());
    }

    @AfterAll
    static void stop() throws Exception {
        if (nginx != null) {
            nginx.close();
        }
        if (proxy != null) {
            proxy.close();
        }
    }

    private static HttpResponse<String> chat(int port, String... headers) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/v1/chat/completions"))
                .header("Content-Type", "application/json")
                .timeout(Duration.ofSeconds(30))
                .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"gpt-4o\",\"messages\":[]}"));
        if (headers.length > 0) {
            b.headers(headers);
        }
        return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    /**
     * README "Limits and timeouts": the proxy takes a head of up to 16 KiB (its Nginx counterpart
     * being large_client_header_buffers). Nginx's default buffers (8k) refused one 12 KiB field
     * with its own HTML 400, so a request that works against the proxy failed behind the front.
     */
    @Test
    void aHeadTheProxyTakesAlsoPassesTheFront() throws Exception {
        String field = "a".repeat(12 * 1024);
        HttpResponse<String> direct = chat(proxy.port(), "X-Trace-Context", field);
        assertEquals(200, direct.statusCode(), "straight to the proxy: " + direct.body());
        HttpResponse<String> fronted = chat(nginx.port, "X-Trace-Context", field);
        assertEquals(200, fronted.statusCode(), "through nginx: " + fronted.body());
        assertEquals(OK, fronted.body());
    }

    /** A head too large for the proxy gets its 431 in the error shape (§9), through the front too. */
    @Test
    void aHeadTooLargeGets431InTheErrorShapeThroughTheFront() throws Exception {
        String field = "a".repeat(20 * 1024);
        HttpResponse<String> direct = chat(proxy.port(), "X-Trace-Context", field);
        assertEquals(431, direct.statusCode(), "straight to the proxy: " + direct.body());
        HttpResponse<String> fronted = chat(nginx.port, "X-Trace-Context", field);
        assertEquals(431, fronted.statusCode(), "through nginx: " + fronted.body());
        Json.assertErrorShape(fronted.body());
    }

    /** A request line longer than even the front's buffers: 414 in the error shape, not Nginx's HTML. */
    @Test
    void aRequestLineTooLongGets414InTheErrorShapeThroughTheFront() throws Exception {
        URI uri = URI.create("http://127.0.0.1:" + nginx.port + "/v1/models?q=" + "a".repeat(20 * 1024));
        HttpResponse<String> fronted = HTTP.send(HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(30)).build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(414, fronted.statusCode(), "through nginx: " + fronted.body());
        Json.assertErrorShape(fronted.body());
    }

    /**
     * Contract §9: malformed HTTP gets 400 (and the other low-level refusals their status) in the
     * error shape. Nginx refuses these itself before the proxy sees them, and answered HTML.
     */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource(delimiter = '|', value = {
            "400|GET /v1/models HTTP/1.1\\r\\nConnection: close\\r\\n\\r\\n",
            "400|GET /v1/models HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 1\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nab",
            "400|garbage\\r\\n\\r\\n",
            "405|TRACE /v1/models HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n",
            "501|POST /v1/models HTTP/1.1\\r\\nHost: x\\r\\nTransfer-Encoding: gzip\\r\\nConnection: close\\r\\n\\r\\n",
            "505|GET /v1/models HTTP/2.0\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n",
    })
    void nginxsOwnRefusalsHaveTheErrorShape(int status, String request) throws Exception {
        String answer;
        try (java.net.Socket s = new java.net.Socket("127.0.0.1", nginx.port)) {
            s.setSoTimeout(30_000);
            s.getOutputStream().write(request.replace("\\r\\n", "\r\n").getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
            s.getOutputStream().flush();
            answer = new String(s.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.ISO_8859_1);
        }
        assertTrue(answer.startsWith("HTTP/1.1 " + status + " "), answer);
        int body = answer.indexOf("\r\n\r\n");
        assertTrue(answer.toLowerCase(java.util.Locale.ROOT).contains("\r\ncontent-type: application/json\r\n"), answer);
        Json.assertErrorShape(answer.substring(body + 4));
    }

    /**
     * Contract §11: the front streams SSE unbuffered. Event-driven, no clock: the upstream sends
     * one small event and holds the stream open until the client has read that event through
     * Nginx; a front that buffered would never hand it over and the read would time out. (Either
     * guard suffices: the site's proxy_buffering off, or the proxy's X-Accel-Buffering: no on SSE.)
     */
    @Test
    void anEventReachesTheClientThroughTheFrontWhileTheStreamIsStillOpen() throws Exception {
        java.util.concurrent.CountDownLatch seen = new java.util.concurrent.CountDownLatch(1);
        String key = "sk-mega-native-nginx-stream-key-0001";
        try (ProxyUnderTest p = ProxyUnderTest.start(java.util.List.of(key), Map.of());
             NativeNginx front = NativeNginx.site(p.port())) {
            p.upstream.otherwise((ctx, req) -> {
                io.netty.handler.codec.http.HttpResponse head = new io.netty.handler.codec.http.DefaultHttpResponse(
                        io.netty.handler.codec.http.HttpVersion.HTTP_1_1, io.netty.handler.codec.http.HttpResponseStatus.OK);
                head.headers().set("content-type", "text/event-stream");
                io.netty.handler.codec.http.HttpUtil.setTransferEncodingChunked(head, true);
                ctx.writeAndFlush(head);
                ctx.writeAndFlush(new io.netty.handler.codec.http.DefaultHttpContent(io.netty.buffer.Unpooled.copiedBuffer(
                        MockUpstream.event(0), java.nio.charset.StandardCharsets.UTF_8)));
                // The rest only once the client has the first event (or never, and the test fails).
                Thread rest = new Thread(() -> {
                    try {
                        if (seen.await(60, TimeUnit.SECONDS)) {
                            ctx.writeAndFlush(new io.netty.handler.codec.http.DefaultHttpContent(io.netty.buffer.Unpooled.copiedBuffer(
                                    "data: [DONE]\n\n", java.nio.charset.StandardCharsets.UTF_8)));
                            ctx.writeAndFlush(io.netty.handler.codec.http.LastHttpContent.EMPTY_LAST_CONTENT);
                        }
                    } catch (InterruptedException ignored) {
                        ctx.close();
                    }
                }, "upstream-rest");
                rest.setDaemon(true);
                rest.start();
            });
            try (java.net.Socket s = new java.net.Socket("127.0.0.1", front.port)) {
                s.setSoTimeout(20_000);
                s.getOutputStream().write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        + "Content-Length: 42\r\nConnection: close\r\n\r\n{\"model\":\"gpt-4o\",\"stream\":true,\"n\":1}    ")
                        .getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
                java.io.InputStream in = s.getInputStream();
                StringBuilder got = new StringBuilder();
                byte[] buf = new byte[4096];
                while (!got.toString().contains("tok0")) {
                    int n = in.read(buf);   // a SocketTimeoutException here: the front held the event back
                    assertTrue(n > 0, "closed before the first event: " + got);
                    got.append(new String(buf, 0, n, java.nio.charset.StandardCharsets.ISO_8859_1));
                }
                assertFalse(got.toString().contains("[DONE]"), "the stream was still open upstream");
                seen.countDown();
                String rest = new String(in.readAllBytes(), java.nio.charset.StandardCharsets.ISO_8859_1);
                assertTrue(rest.contains("data: [DONE]"), rest);
            }
        }
    }
}
