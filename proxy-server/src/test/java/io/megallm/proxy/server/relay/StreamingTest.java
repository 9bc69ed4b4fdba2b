package io.megallm.proxy.server.relay;

import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import static io.megallm.proxy.server.testing.KeyAsserts.assertKey;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Contract §8 over real sockets: chunk by chunk, backpressure, hang-ups both ways. */
class StreamingTest {

    private static final String STREAM_BODY = "{\"model\":\"m\",\"stream\":true,\"messages\":[]}";

    private static String streamRequest() {
        return "POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n"
                + "Content-Length: " + STREAM_BODY.length() + "\r\n\r\n" + STREAM_BODY;
    }

    private static Socket openStream(ProxyUnderTest p) throws IOException {
        Socket s = RawHttp.connect(p.port());
        s.getOutputStream().write(streamRequest().getBytes(StandardCharsets.ISO_8859_1));
        s.getOutputStream().flush();
        return s;
    }

    /** Reads lines until one starts with "data:"; returns it. */
    private static String nextDataLine(InputStream in) throws IOException {
        for (;;) {
            String line = RawHttp.readLine(in);
            int idx = line.indexOf("data:");
            if (idx >= 0) {
                return line.substring(idx);
            }
        }
    }

    @Test
    void theFirstEventArrivesBeforeTheUpstreamHasFinished() throws Exception {
        CountDownLatch firstSeenByClient = new CountDownLatch(1);
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            p.upstream.otherwise((ctx, req) -> {
                HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
                head.headers().set(HttpHeaderNames.CONTENT_TYPE, "text/event-stream");
                HttpUtil.setTransferEncodingChunked(head, true);
                ctx.writeAndFlush(head);
                ctx.writeAndFlush(new DefaultHttpContent(Unpooled.copiedBuffer(MockUpstream.event(0), StandardCharsets.UTF_8)));
                // The rest only once the client has seen the first event: a buffering proxy deadlocks here.
                new Thread(() -> {
                    try {
                        if (firstSeenByClient.await(20, TimeUnit.SECONDS)) {
                            ctx.writeAndFlush(new DefaultHttpContent(Unpooled.copiedBuffer(MockUpstream.event(1), StandardCharsets.UTF_8)));
                            ctx.writeAndFlush(LastHttpContent.EMPTY_LAST_CONTENT);
                        }
                    } catch (InterruptedException ignored) {
                        Thread.currentThread().interrupt();
                    }
                }).start();
            });
            try (Socket s = openStream(p)) {
                InputStream in = s.getInputStream();
                ByteArrayOutputStream headBytes = new ByteArrayOutputStream();
                String head = RawHttp.readHead(in, headBytes).toLowerCase();
                assertTrue(head.startsWith("http/1.1 200"), head);
                assertTrue(head.contains("x-accel-buffering: no"), head);
                assertTrue(head.contains("content-type: text/event-stream"), head);
                assertEquals(MockUpstream.event(0).trim(), nextDataLine(in));
                firstSeenByClient.countDown();
                assertEquals(MockUpstream.event(1).trim(), nextDataLine(in));
            }
        }
    }

    @Test
    void streamedBytesAreIdenticalAndTheStreamEndsCleanly() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            p.upstream.otherwise(MockUpstream.sse(25, 5));
            try (Socket s = openStream(p)) {
                InputStream in = s.getInputStream();
                RawHttp.readHead(in, new ByteArrayOutputStream());
                ByteArrayOutputStream chunks = new ByteArrayOutputStream();
                RawHttp.readChunks(in, chunks);
                String body = dechunk(chunks.toString(StandardCharsets.ISO_8859_1));
                StringBuilder expected = new StringBuilder();
                for (int i = 0; i < 25; i++) {
                    expected.append(MockUpstream.event(i));
                }
                expected.append("data: [DONE]\n\n");
                assertEquals(expected.toString(), body);

                // Same client connection, so same event loop and same upstream pool: the finished
                // stream's upstream connection was pooled and serves the next request.
                p.upstream.otherwise(MockUpstream.json(200, "{}"));
                s.getOutputStream().write(streamRequest().getBytes(StandardCharsets.ISO_8859_1));
                String next = RawHttp.readResponse(in);
                assertTrue(next.startsWith("HTTP/1.1 200"), next);
                assertEquals(1, p.upstream.connectionsOpened());
            }
        }
    }

    @Test
    void chunkFramingAndTrailersReachTheClientAsTheUpstreamSentThem() throws Exception {
        String event = MockUpstream.event(0);
        // Leading zeros, a chunk extension, a trailer: nothing a decoder and re-encoder would keep.
        String chunks = "00" + Integer.toHexString(event.length()) + ";ext=1\r\n" + event + "\r\n5\r\nhello\r\n";
        String end = "0\r\nX-Trailer: done\r\n\r\n";
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            p.upstream.otherwise((ctx, req) -> ctx.pipeline().firstContext().writeAndFlush(Unpooled.copiedBuffer(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                            + chunks + end, StandardCharsets.ISO_8859_1)));
            try (Socket s = openStream(p)) {
                InputStream in = s.getInputStream();
                String head = RawHttp.readHead(in, new ByteArrayOutputStream()).toLowerCase();
                assertTrue(head.contains("transfer-encoding: chunked"), head);
                byte[] body = in.readNBytes(chunks.length() + end.length());
                assertEquals(chunks + end, new String(body, StandardCharsets.ISO_8859_1));

                // The response ended where the upstream ended it: its connection was pooled and
                // serves the next request, and the client connection carries on.
                p.upstream.otherwise(MockUpstream.json(200, "{}"));
                s.getOutputStream().write(streamRequest().getBytes(StandardCharsets.ISO_8859_1));
                String next = RawHttp.readResponse(in);
                assertTrue(next.startsWith("HTTP/1.1 200"), next);
                assertEquals(1, p.upstream.connectionsOpened());
            }
        }
    }

    @Test
    void anAnswerThatEndsWithTheUpstreamsCloseReachesTheClientInChunks() throws Exception {
        String body = "{\"hello\":\"until close\"}";
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            // No Content-Length, not chunked: the body ends when the upstream closes.
            p.upstream.otherwise((ctx, req) -> ctx.pipeline().firstContext().writeAndFlush(Unpooled.copiedBuffer(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + body, StandardCharsets.ISO_8859_1))
                    .addListener(ChannelFutureListener.CLOSE));
            try (Socket s = openStream(p)) {
                InputStream in = s.getInputStream();
                String head = RawHttp.readHead(in, new ByteArrayOutputStream()).toLowerCase();
                assertTrue(head.contains("transfer-encoding: chunked"), head);
                String framed = Integer.toHexString(body.length()) + "\r\n" + body + "\r\n0\r\n\r\n";
                assertEquals(framed, new String(in.readNBytes(framed.length()), StandardCharsets.ISO_8859_1));

                // The client connection carries on.
                p.upstream.otherwise(MockUpstream.json(200, "{}"));
                s.getOutputStream().write(streamRequest().getBytes(StandardCharsets.ISO_8859_1));
                assertTrue(RawHttp.readResponse(in).startsWith("HTTP/1.1 200"));
            }
        }
    }

    @Test
    void clientHangUpMidStreamClosesTheUpstreamConnection() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            p.upstream.otherwise(MockUpstream.sse(10_000, 20));
            try (Socket s = openStream(p)) {
                nextDataLine(s.getInputStream());
            }
            String closed = p.upstream.awaitClosedStream(5, TimeUnit.SECONDS);
            assertKey(p.keys.get(0), closed, "the upstream stream was not closed after the client left");
            // And the proxy serves on.
            p.upstream.otherwise(MockUpstream.json(200, "{}"));
            assertEquals(200, p.chat().statusCode());
        }
    }

    @Test
    void clientHangUpWhileWaitingForHeadersClosesTheUpstreamConnection() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            p.upstream.otherwise(MockUpstream.stall());
            try (Socket s = openStream(p)) {
                p.upstream.take();
            }
            assertKey(p.keys.get(0), p.upstream.awaitClosedStream(5, TimeUnit.SECONDS), null);
        }
    }

    @Test
    void upstreamDropMidStreamIsNotACleanEnd() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            p.upstream.otherwise(MockUpstream.sseThenDrop(3, 5));
            try (Socket s = openStream(p)) {
                InputStream in = s.getInputStream();
                String head = RawHttp.readHead(in, new ByteArrayOutputStream());
                assertTrue(head.toLowerCase().contains("transfer-encoding: chunked"), head);
                ByteArrayOutputStream got = new ByteArrayOutputStream();
                assertThrows(EOFException.class, () -> RawHttp.readChunks(in, got),
                        "the client must see a broken stream, not a terminating chunk");
                assertTrue(got.toString(StandardCharsets.ISO_8859_1).contains("tok2"));
            }
        }
    }

    /**
     * Audit (2026-12-07): an HTTP/1.0 client reads the body up to the close, and the proxy closed
     * with a FIN when the upstream dropped mid-stream, exactly as at a clean end. A reset now.
     */
    @Test
    void upstreamDropMidStreamIsNotACleanEndForAnHttp10ClientEither() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            p.upstream.otherwise(MockUpstream.sseThenDrop(3, 5));
            try (Socket s = RawHttp.connect(p.port())) {
                s.getOutputStream().write(("POST /v1/chat/completions HTTP/1.0\r\nHost: proxy\r\n"
                        + "Content-Type: application/json\r\nContent-Length: " + STREAM_BODY.length() + "\r\n\r\n"
                        + STREAM_BODY).getBytes(StandardCharsets.ISO_8859_1));
                s.getOutputStream().flush();
                InputStream in = s.getInputStream();
                String head = RawHttp.readHead(in, new ByteArrayOutputStream());
                assertTrue(head.startsWith("HTTP/1.1 200"), head);
                assertFalse(head.toLowerCase().contains("transfer-encoding"), head);
                assertFalse(head.toLowerCase().contains("content-length"), head);
                assertThrows(java.net.SocketException.class, () -> {
                    byte[] buf = new byte[4096];
                    while (in.read(buf) >= 0) {
                        // the body up to the end: a reset, never a clean end of the stream
                    }
                }, "the client must see a broken stream, not the clean close that ends a whole answer");
            }
        }
    }

    @Test
    void anHttp10ClientsWholeStreamEndsWithACleanClose() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            p.upstream.otherwise(MockUpstream.sse(3, 5));
            String answer = RawHttp.exchange(p.port(), "POST /v1/chat/completions HTTP/1.0\r\nHost: proxy\r\n"
                    + "Content-Type: application/json\r\nContent-Length: " + STREAM_BODY.length() + "\r\n\r\n"
                    + STREAM_BODY);
            assertTrue(answer.startsWith("HTTP/1.1 200"), answer);
            assertTrue(answer.contains("[DONE]"), answer);
        }
    }

    @Test
    void aClientThatDoesNotReadStopsTheUpstreamFromSending() throws Exception {
        long total = 64L * 1024 * 1024;
        AtomicLong flushed = new AtomicLong();
        CountDownLatch blocked = new CountDownLatch(1);
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            p.upstream.otherwise((ctx, req) -> {
                HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
                HttpUtil.setContentLength(head, total);
                ctx.writeAndFlush(head);
                pump(ctx, total, flushed, blocked);
            });
            try (Socket s = openStream(p)) {
                s.setReceiveBufferSize(64 * 1024);
                // Nothing is read: the upstream must find its socket full long before 64 MiB.
                assertTrue(blocked.await(20, TimeUnit.SECONDS), "the upstream was never held back");
                long sentWhileBlocked = flushed.get();
                assertTrue(sentWhileBlocked < total / 2,
                        "the upstream pushed " + sentWhileBlocked + " bytes into a client that read nothing");
                InputStream in = s.getInputStream();
                RawHttp.readHead(in, new ByteArrayOutputStream());
                byte[] buf = new byte[256 * 1024];
                long read = 0;
                int n;
                while (read < total && (n = in.read(buf)) > 0) {
                    read += n;
                }
                assertEquals(total, read);
            }
        }
    }

    /** Writes while the socket takes it; signals {@code blocked} the first time it does not. */
    private static void pump(ChannelHandlerContext ctx, long total, AtomicLong flushed, CountDownLatch blocked) {
        int chunk = 64 * 1024;
        while (flushed.get() < total && ctx.channel().isWritable()) {
            int n = (int) Math.min(chunk, total - flushed.get());
            flushed.addAndGet(n);
            ctx.writeAndFlush(new DefaultHttpContent(Unpooled.wrappedBuffer(new byte[n])))
                    .addListener(ChannelFutureListener.CLOSE_ON_FAILURE);
        }
        if (flushed.get() >= total) {
            ctx.writeAndFlush(LastHttpContent.EMPTY_LAST_CONTENT);
            return;
        }
        blocked.countDown();
        ctx.channel().eventLoop().execute(() -> waitWritable(ctx, total, flushed, blocked));
    }

    private static void waitWritable(ChannelHandlerContext ctx, long total, AtomicLong flushed, CountDownLatch blocked) {
        if (!ctx.channel().isActive()) {
            return;
        }
        if (ctx.channel().isWritable()) {
            pump(ctx, total, flushed, blocked);
        } else {
            ctx.channel().eventLoop().schedule(() -> waitWritable(ctx, total, flushed, blocked), 5, TimeUnit.MILLISECONDS);
        }
    }

    private static String dechunk(String chunked) {
        StringBuilder out = new StringBuilder();
        int i = 0;
        while (i < chunked.length()) {
            int eol = chunked.indexOf("\r\n", i);
            int size = Integer.parseInt(chunked.substring(i, eol).trim(), 16);
            if (size == 0) {
                break;
            }
            out.append(chunked, eol + 2, eol + 2 + size);
            i = eol + 2 + size + 2;
        }
        return out.toString();
    }

    @Test
    void nonStreamingAnswerHasNoAccelHeader() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            var r = p.chat();
            assertEquals(200, r.statusCode());
            assertNotNull(r.headers().firstValue("content-length").orElse(null));
            assertTrue(r.headers().firstValue("x-accel-buffering").isEmpty());
        }
    }
}
