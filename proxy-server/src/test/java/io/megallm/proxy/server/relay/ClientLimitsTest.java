package io.megallm.proxy.server.relay;

import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import io.netty.buffer.Unpooled;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.util.concurrent.ScheduledFuture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Contract §3 and §9 over real sockets: the client timeouts, the connection cap and the client key
 * checked on the head. Timeouts are set to a second; the tests wait for outcomes (an answer, a
 * close), never for a time, and a well-behaved client is served while a bad one is held.
 */
class ClientLimitsTest {

    private static final String CHAT = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

    private static String error(String response) {
        String body = response.substring(response.indexOf("\r\n\r\n") + 4);
        assertTrue(body.startsWith("{\"error\":{\"message\":"), response);
        assertTrue(body.contains("\"type\":") && body.contains("\"code\":"), response);
        return body;
    }

    /** Reads until the proxy closes; a reset counts as a close too. */
    private static String readToClose(InputStream in) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buf = new byte[8192];
        try {
            int n;
            while ((n = in.read(buf)) >= 0) {
                out.write(buf, 0, n);
            }
        } catch (SocketException reset) {
            // cut: what was read before stays
        }
        return out.toString(StandardCharsets.ISO_8859_1);
    }

    private static void send(Socket s, String raw) throws IOException {
        s.getOutputStream().write(raw.getBytes(StandardCharsets.ISO_8859_1));
        s.getOutputStream().flush();
    }

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                fail("not within 20 s: " + what);
            }
            Thread.sleep(10);
        }
    }

    // ---- CLIENT_HEADER_TIMEOUT -------------------------------------------------------------------

    @Test
    @Timeout(30)
    void aHeadStillTricklingInAtTheHeaderTimeoutGets408AndIsClosedWhileOthersAreServed() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("CLIENT_HEADER_TIMEOUT", "1"));
             Socket slow = RawHttp.connect(p.port())) {
            send(slow, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Pad: ");
            // Slowloris: a byte now and then, never the end of the head. The whole head has a
            // deadline, so bytes that keep coming do not keep the connection.
            Thread trickle = new Thread(() -> {
                try {
                    OutputStream o = slow.getOutputStream();
                    while (true) {
                        o.write('a');
                        o.flush();
                        Thread.sleep(100);
                    }
                } catch (IOException | InterruptedException stopped) {
                    // the proxy closed the connection, or the test ended
                }
            });
            trickle.setDaemon(true);
            trickle.start();

            assertEquals(200, p.chat().statusCode(), "a well-behaved client is served meanwhile");

            String response = readToClose(slow.getInputStream());
            trickle.interrupt();
            assertTrue(response.startsWith("HTTP/1.1 408 "), response);
            assertTrue(response.toLowerCase().contains("connection: close"), response);
            assertTrue(error(response).contains("\"code\":\"request_timeout\""), response);
            assertEquals(1, p.upstream.requestCount(), "only the good request went upstream");
        }
    }

    @Test
    @Timeout(30)
    void aConnectionThatSendsNothingIsClosedSilentlyAtTheHeaderTimeout() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("CLIENT_HEADER_TIMEOUT", "1"));
             Socket idle = RawHttp.connect(p.port())) {
            assertEquals(200, p.chat().statusCode());
            assertEquals("", readToClose(idle.getInputStream()), "no answer to a request never sent");
        }
    }

    // ---- CLIENT_BODY_TIMEOUT ---------------------------------------------------------------------

    @Test
    @Timeout(30)
    void aBodyThatStopsGets408AndNothingGoesUpstream() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("CLIENT_BODY_TIMEOUT", "1"));
             Socket slow = RawHttp.connect(p.port())) {
            send(slow, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + "Content-Length: 100\r\n\r\n{\"model\":");

            assertEquals(200, p.chat().statusCode(), "a well-behaved client is served meanwhile");

            String response = readToClose(slow.getInputStream());
            assertTrue(response.startsWith("HTTP/1.1 408 "), response);
            assertTrue(error(response).contains("\"code\":\"request_timeout\""), response);
            assertEquals(1, p.upstream.requestCount(), "the cut request never went upstream");
        }
    }

    // ---- KEEPALIVE_TIMEOUT -----------------------------------------------------------------------

    @Test
    @Timeout(30)
    void anIdleKeepAliveConnectionIsClosedSilently() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("KEEPALIVE_TIMEOUT", "1"));
             Socket s = RawHttp.connect(p.port())) {
            send(s, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
            String first = RawHttp.readResponse(s.getInputStream());
            assertTrue(first.startsWith("HTTP/1.1 200 "), first);
            assertFalse(first.toLowerCase().contains("connection: close"), first);

            assertEquals("", readToClose(s.getInputStream()), "closed without a word");
        }
    }

    // ---- SEND_TIMEOUT ----------------------------------------------------------------------------

    /** A stream of 8 KiB events, as fast as the proxy takes them, until the connection closes. */
    private static MockUpstream.Behavior endlessStreamOrJson() {
        String event = "data: " + "x".repeat(8 * 1024) + "\n\n";
        MockUpstream.Behavior json = MockUpstream.json(200, "{\"id\":\"c1\",\"object\":\"chat.completion\"}");
        return (ctx, req) -> {
            if (!req.content().toString(StandardCharsets.UTF_8).contains("\"stream\":true")) {
                json.respond(ctx, req);
                return;
            }
            HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
            head.headers().set(HttpHeaderNames.CONTENT_TYPE, "text/event-stream");
            HttpUtil.setTransferEncodingChunked(head, true);
            ctx.writeAndFlush(head);
            ScheduledFuture<?>[] task = new ScheduledFuture<?>[1];
            task[0] = ctx.executor().scheduleAtFixedRate(() -> {
                if (!ctx.channel().isActive()) {
                    task[0].cancel(false);
                } else if (ctx.channel().isWritable()) {
                    ctx.writeAndFlush(new DefaultHttpContent(Unpooled.copiedBuffer(event, StandardCharsets.UTF_8)));
                }
            }, 0, 1, TimeUnit.MILLISECONDS);
        };
    }

    @Test
    @Timeout(40)
    void aClientThatStopsReadingAStreamIsCutAndItsUpstreamClosed() throws Exception {
        // MEGALLM_TIMEOUT far above the test's time: only the send timeout can end this stream.
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("SEND_TIMEOUT", "1", "MEGALLM_TIMEOUT", "300"))) {
            p.upstream.otherwise(endlessStreamOrJson());
            try (Socket stalled = new Socket()) {
                stalled.setReceiveBufferSize(4096);
                stalled.connect(new InetSocketAddress("127.0.0.1", p.port()), 5000);
                stalled.setSoTimeout(30_000);
                String body = "{\"model\":\"gpt-4o\",\"stream\":true,\"messages\":[]}";
                send(stalled, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        + "Content-Length: " + body.length() + "\r\n\r\n" + body);
                String head = RawHttp.readHead(stalled.getInputStream(), new ByteArrayOutputStream());
                assertTrue(head.startsWith("HTTP/1.1 200 "), head);
                // From here on the client reads nothing.

                assertEquals(200, p.post("/v1/chat/completions", CHAT).statusCode(),
                        "a well-behaved client is served meanwhile");

                assertNotNull(p.upstream.awaitClosedStream(30, TimeUnit.SECONDS),
                        "the stalled client's upstream connection was not closed");
                String rest = readToClose(stalled.getInputStream());
                assertFalse(rest.endsWith("0\r\n\r\n"), "the cut stream must not look complete");
            }
        }
    }

    // ---- MAX_CONNECTIONS -------------------------------------------------------------------------

    private static String health(Socket s) throws IOException {
        send(s, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        return RawHttp.readResponse(s.getInputStream());
    }

    @Test
    @Timeout(30)
    void oneConnectionOverTheCapGets503AndIsClosedAndAClosedOneMakesRoom() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MAX_CONNECTIONS", "3"))) {
            List<Socket> open = new ArrayList<>();
            try {
                for (int i = 0; i < 3; i++) {
                    Socket s = RawHttp.connect(p.port());
                    open.add(s);
                    assertTrue(health(s).startsWith("HTTP/1.1 200 "));
                }
                String refused;
                try (Socket over = RawHttp.connect(p.port())) {
                    send(over, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
                    refused = readToClose(over.getInputStream());
                }
                assertTrue(refused.startsWith("HTTP/1.1 503 "), refused);
                assertTrue(refused.toLowerCase().contains("connection: close"), refused);
                assertTrue(error(refused).contains("\"code\":\"too_many_connections\""), refused);

                open.remove(0).close();
                await(() -> p.server.clientLimits().openConnections() <= 2, "the proxy saw the closes");
                try (Socket again = RawHttp.connect(p.port())) {
                    assertTrue(health(again).startsWith("HTTP/1.1 200 "), "a freed place is served");
                }
                for (Socket s : open) {
                    assertTrue(health(s).startsWith("HTTP/1.1 200 "), "the connections within the cap still work");
                }
            } finally {
                for (Socket s : open) {
                    s.close();
                }
            }
            await(() -> p.server.clientLimits().openConnections() == 0, "every connection was counted out");
        }
    }

    // ---- the client key on the head --------------------------------------------------------------

    @Test
    @Timeout(30)
    void aBadClientKeyGets401BeforeTheBodyIsSent() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("PROXY_API_KEYS", "ck-limits-test-client-0001"));
             Socket s = RawHttp.connect(p.port())) {
            // Nine megabytes announced, none sent: the answer may not wait for them.
            send(s, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ck-wrong\r\n"
                    + "Content-Type: application/json\r\nContent-Length: 9000000\r\n\r\n");
            String response = readToClose(s.getInputStream());
            assertTrue(response.startsWith("HTTP/1.1 401 "), response);
            assertTrue(error(response).contains("\"code\":\"invalid_api_key\""), response);
            assertTrue(response.toLowerCase().contains("connection: close"), response);
            assertEquals(0, p.upstream.requestCount());
        }
    }

    @Test
    @Timeout(30)
    void aGoodClientKeyStillReachesTheUpstreamWithItsBody() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("PROXY_API_KEYS", "ck-limits-test-client-0001"))) {
            p.upstream.otherwise(MockUpstream.echo());
            String response = RawHttp.exchange(p.port(), "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                    + "x-api-key: ck-limits-test-client-0001\r\nContent-Type: application/json\r\n"
                    + "Content-Length: " + CHAT.length() + "\r\nConnection: close\r\n\r\n" + CHAT);
            assertTrue(response.startsWith("HTTP/1.1 200 "), response);
            assertTrue(response.endsWith(CHAT), response);
            assertFalse(p.upstream.take().headers().contains("x-api-key"));
        }
    }
}
