package io.megallm.proxy.server.relay;

import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import io.netty.buffer.Unpooled;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.net.Socket;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Contract §3 HTTP_POOL_MAXSIZE: a request that finds no free upstream connection waits, then gets 503. */
class PoolLimitTest {

    private static final String BODY = "{\"model\":\"m\",\"stream\":true}";

    private static Socket openStream(ProxyUnderTest p) throws Exception {
        Socket s = RawHttp.connect(p.port());
        s.getOutputStream().write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + "Content-Length: " + BODY.length() + "\r\n\r\n" + BODY).getBytes(StandardCharsets.ISO_8859_1));
        s.getOutputStream().flush();
        return s;
    }

    @Test
    void aRequestThatFindsThePoolFullGets503AfterTheTimeout() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("HTTP_POOL_MAXSIZE", "1", "MEGALLM_TIMEOUT", "0.5"))) {
            p.upstream.otherwise(MockUpstream.sse(1000, 50));
            try (Socket stream = openStream(p)) {
                InputStream in = stream.getInputStream();
                RawHttp.readHead(in, new ByteArrayOutputStream());
                RawHttp.readLine(in);
                p.upstream.otherwise(MockUpstream.json(200, "{}"));
                HttpResponse<String> r = p.chat();
                assertEquals(503, r.statusCode(), r.body());
                assertTrue(r.body().contains("\"code\":\"upstream_pool_exhausted\""), r.body());
            }
        }
    }

    @Test
    void aWaitingRequestGetsTheConnectionWhenOneIsFreed() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("HTTP_POOL_MAXSIZE", "1"))) {
            p.upstream.otherwise(MockUpstream.sse(1000, 20));
            Socket stream = openStream(p);
            InputStream in = stream.getInputStream();
            RawHttp.readHead(in, new ByteArrayOutputStream());
            RawHttp.readLine(in);
            p.upstream.otherwise(MockUpstream.json(200, "{\"second\":true}"));
            CompletableFuture<HttpResponse<String>> waiting = p.client().sendAsync(
                    java.net.http.HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                            .header("Content-Type", "application/json")
                            .POST(java.net.http.HttpRequest.BodyPublishers.ofString("{\"model\":\"m\"}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            // The waiting request cannot have reached the upstream: the only connection is busy.
            assertEquals(1, p.upstream.requestCount());
            stream.close();
            HttpResponse<String> r = waiting.get();
            assertEquals(200, r.statusCode());
            assertEquals("{\"second\":true}", r.body());
        }
    }

    /** A value of /metrics, for a sample without labels or with exactly the labels given. */
    static double metric(ProxyUnderTest p, String sample) throws Exception {
        String text = p.get("/metrics").body();
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(sample) + " ([0-9.eE+-]+)$").matcher(text);
        if (!m.find()) {
            throw new AssertionError("no " + sample + " in /metrics");
        }
        return Double.parseDouble(m.group(1));
    }

    /** Reads /metrics until {@code sample} has {@code expected}: each read is one event, no sleep. */
    static void awaitMetric(ProxyUnderTest p, String sample, double expected) throws Exception {
        double seen = Double.NaN;
        for (int i = 0; i < 2000; i++) {
            seen = metric(p, sample);
            if (seen == expected) {
                return;
            }
        }
        assertEquals(expected, seen, sample);
    }

    /** An event stream that sends its head and one event, then its end when the test says so. */
    private static MockUpstream.Behavior heldStream(CompletableFuture<Void> finish) {
        return (ctx, req) -> {
            DefaultHttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
            head.headers().set(HttpHeaderNames.CONTENT_TYPE, "text/event-stream");
            HttpUtil.setTransferEncodingChunked(head, true);
            ctx.write(head);
            ctx.writeAndFlush(new DefaultHttpContent(Unpooled.copiedBuffer(MockUpstream.event(0), StandardCharsets.UTF_8)));
            finish.thenRun(() -> ctx.executor().execute(() -> ctx.writeAndFlush(new DefaultHttpContent(
                    Unpooled.copiedBuffer("data: [DONE]\n\n", StandardCharsets.UTF_8)))
                    .addListener(f -> ctx.writeAndFlush(LastHttpContent.EMPTY_LAST_CONTENT))));
        };
    }

    /**
     * §9: a request whose client leaves while it waits for an upstream connection is dropped from
     * the wait: no connection is opened for it, and the connection it waited for, freed later, is
     * kept alive for the next request instead of being closed for a waiter that is gone.
     */
    @Test
    void aWaiterWhoseClientLeavesIsDroppedAndCostsNoConnection() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("HTTP_POOL_MAXSIZE", "1"))) {
            CompletableFuture<Void> finish = new CompletableFuture<>();
            p.upstream.otherwise(heldStream(finish));
            try (Socket stream = openStream(p)) {
                InputStream in = stream.getInputStream();
                RawHttp.readHead(in, new ByteArrayOutputStream());
                // The first event, as one chunk: the stream holds the only connection now.
                in.readNBytes(Integer.parseInt(RawHttp.readLine(in).trim(), 16) + 2);
                p.upstream.otherwise(MockUpstream.json(200, "{\"after\":true}"));

                Socket gone = RawHttp.connect(p.port());
                gone.getOutputStream().write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                        + "Content-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"model\":\"m\"}")
                        .getBytes(StandardCharsets.ISO_8859_1));
                gone.getOutputStream().flush();
                awaitMetric(p, "megallm_upstream_waiting", 1);
                gone.close();
                awaitMetric(p, "megallm_upstream_attempts_total{outcome=\"client_cancelled\"}", 1);
                awaitMetric(p, "megallm_upstream_waiting", 0);

                // The held stream ends cleanly; its connection must be kept, not closed for the ghost.
                finish.complete(null);
                ByteArrayOutputStream rest = new ByteArrayOutputStream();
                RawHttp.readChunks(in, rest);
                // Same client connection, so the same event loop and its idle upstream connection.
                stream.getOutputStream().write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                        + "Content-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"model\":\"m\"}")
                        .getBytes(StandardCharsets.ISO_8859_1));
                stream.getOutputStream().flush();
                String answer = RawHttp.readResponse(in);
                assertTrue(answer.startsWith("HTTP/1.1 200"), answer);
                assertTrue(answer.endsWith("{\"after\":true}"), answer);
            }
            assertEquals(2, p.upstream.requestCount(), "the gone client's request never reached the upstream");
            assertEquals(1, p.upstream.connectionsOpened(), "no connection was opened for the gone client");
        }
    }
}
