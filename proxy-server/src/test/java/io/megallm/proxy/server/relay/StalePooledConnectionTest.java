package io.megallm.proxy.server.relay;

import io.megallm.proxy.server.testing.ProxyUnderTest;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Pooled keep-alive connections the upstream closes just as a request is written on them (its
 * keep-alive timeout crossing our request), over real sockets.
 */
class StalePooledConnectionTest {

    private static final String OK = "{\"id\":\"fresh\"}";

    /**
     * An upstream that answers the first request of each connection (once {@code hold} requests
     * are in, so that they all get a connection of their own) and closes a connection unanswered
     * when a second request comes on it: every kept connection is one it has cut.
     */
    private static final class CuttingUpstream implements AutoCloseable {
        final ServerSocket server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        final CountDownLatch firsts;
        final AtomicInteger connections = new AtomicInteger();
        final AtomicInteger cut = new AtomicInteger();

        CuttingUpstream(int hold) throws IOException {
            firsts = new CountDownLatch(hold);
            Thread t = new Thread(() -> {
                try {
                    while (true) {
                        Socket s = server.accept();
                        connections.incrementAndGet();
                        Thread c = new Thread(() -> serve(s));
                        c.setDaemon(true);
                        c.start();
                    }
                } catch (IOException e) {
                    // closed
                }
            });
            t.setDaemon(true);
            t.start();
        }

        private void serve(Socket s) {
            try (s) {
                InputStream in = s.getInputStream();
                OutputStream out = s.getOutputStream();
                readRequest(in);
                firsts.countDown();
                firsts.await(30, TimeUnit.SECONDS);
                byte[] body = OK.getBytes(StandardCharsets.UTF_8);
                out.write(("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + body.length
                        + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                out.write(body);
                out.flush();
                if (readRequest(in)) {
                    cut.incrementAndGet();
                }
            } catch (Exception e) {
                // the proxy went away
            }
        }

        /** Reads one request head and its Content-Length body; false at the end of the stream. */
        private static boolean readRequest(InputStream in) throws IOException {
            ByteArrayOutputStream head = new ByteArrayOutputStream();
            while (!head.toString(StandardCharsets.ISO_8859_1).endsWith("\r\n\r\n")) {
                int b = in.read();
                if (b < 0) {
                    return false;
                }
                head.write(b);
            }
            int length = 0;
            for (String line : head.toString(StandardCharsets.ISO_8859_1).split("\r\n")) {
                if (line.regionMatches(true, 0, "Content-Length:", 0, 15)) {
                    length = Integer.parseInt(line.substring(15).strip());
                }
            }
            in.readNBytes(length);
            return true;
        }

        @Override
        public void close() throws IOException {
            server.close();
        }
    }

    /**
     * The resend after a pooled connection died unanswered under a written request goes on a new
     * connection: the other kept connections were opened with it and are as likely cut. It went
     * on the next pooled one, died the same way, and the client got 502 from a healthy upstream
     * (the once-more of §7 spent on two connections the upstream had closed).
     */
    @Test
    void theResendAfterACutPooledConnectionGoesOnANewConnection() throws Exception {
        // Two kept connections on every event loop of the proxy (one per core).
        int loops = Math.max(1, Runtime.getRuntime().availableProcessors());
        int first = 2 * loops;
        try (CuttingUpstream upstream = new CuttingUpstream(first);
             ProxyUnderTest p = ProxyUnderTest.start(1, Map.of(
                     "MEGALLM_BASE_URL", "http://127.0.0.1:" + upstream.server.getLocalPort() + "/v1"))) {
            List<CompletableFuture<HttpResponse<String>>> burst = new ArrayList<>();
            for (int i = 0; i < first; i++) {
                burst.add(p.chatAsync());
            }
            for (CompletableFuture<HttpResponse<String>> f : burst) {
                assertEquals(200, f.get(30, TimeUnit.SECONDS).statusCode());
            }
            assertEquals(first, upstream.connections.get());
            HttpResponse<String> r = p.chat();
            assertEquals(200, r.statusCode(), "the upstream is healthy, it only cut its idle connections: " + r.body());
            assertEquals(OK, r.body());
            assertEquals(1, upstream.cut.get(), "one kept connection met the cut, the resend went on a new one");
        }
    }
}
