package io.megallm.proxy.server.relay;

import io.megallm.proxy.server.testing.ProxyUnderTest;
import org.junit.jupiter.api.Test;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * An upstream may answer before it has read the request body (a 401 to a large body). The
 * connection is pooled only when the request was fully written as well as the answer fully
 * read: otherwise the next request would queue behind the rest of the old body, on a
 * connection the server may never read again.
 */
class EarlyAnswerTest {

    /**
     * A raw HTTP/1.1 upstream: on its first connection it answers the first request 401
     * (keep-alive) right after the head, and only then reads that request's body; everything
     * else gets 200 naming the connection it came on.
     */
    private static final class EarlyAnswerUpstream implements AutoCloseable {
        final ServerSocket server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        final AtomicInteger connections = new AtomicInteger();
        final AtomicInteger requestsAfterEarlyAnswer = new AtomicInteger();
        final List<Socket> sockets = new CopyOnWriteArrayList<>();

        EarlyAnswerUpstream() throws IOException {
            Thread acceptor = new Thread(() -> {
                try {
                    while (true) {
                        Socket s = server.accept();
                        sockets.add(s);
                        int n = connections.incrementAndGet();
                        Thread t = new Thread(() -> serve(s, n), "early-answer-" + n);
                        t.setDaemon(true);
                        t.start();
                    }
                } catch (IOException closed) {
                    // test over
                }
            }, "early-answer-acceptor");
            acceptor.setDaemon(true);
            acceptor.start();
        }

        String baseUrl() {
            return "http://127.0.0.1:" + server.getLocalPort() + "/v1";
        }

        private void serve(Socket s, int connection) {
            boolean answeredEarly = false;
            try (s) {
                InputStream in = new BufferedInputStream(s.getInputStream());
                OutputStream out = s.getOutputStream();
                for (;;) {
                    String head = RawHttp.readHead(in, new ByteArrayOutputStream());
                    if (!head.endsWith("\r\n\r\n")) {
                        return;
                    }
                    long length = contentLength(head);
                    if (connection == 1 && !answeredEarly) {
                        answeredEarly = true;
                        write(out, 401, "{\"error\":{\"message\":\"bad key\"}}");
                        skip(in, length);
                        continue;
                    }
                    if (answeredEarly) {
                        requestsAfterEarlyAnswer.incrementAndGet();
                    }
                    skip(in, length);
                    write(out, 200, "{\"connection\":" + connection + "}");
                }
            } catch (IOException gone) {
                // the proxy closed the connection
            }
        }

        private static long contentLength(String head) {
            for (String line : head.split("\r\n")) {
                if (line.toLowerCase().startsWith("content-length:")) {
                    return Long.parseLong(line.substring(15).trim());
                }
            }
            return 0;
        }

        private static void skip(InputStream in, long n) throws IOException {
            long left = n;
            while (left > 0) {
                long k = in.skip(left);
                if (k <= 0) {
                    if (in.read() < 0) {
                        throw new IOException("closed inside the body");
                    }
                    k = 1;
                }
                left -= k;
            }
        }

        private static void write(OutputStream out, int status, String body) throws IOException {
            byte[] b = body.getBytes(StandardCharsets.UTF_8);
            out.write(("HTTP/1.1 " + status + (status == 200 ? " OK" : " Unauthorized") + "\r\n"
                    + "Content-Type: application/json\r\nContent-Length: " + b.length + "\r\n\r\n")
                    .getBytes(StandardCharsets.ISO_8859_1));
            out.write(b);
            out.flush();
        }

        @Override
        public void close() throws IOException {
            server.close();
            for (Socket s : sockets) {
                s.close();
            }
        }
    }

    @Test
    void aConnectionAnsweredBeforeItsBodyWasWrittenIsNotReused() throws Exception {
        try (EarlyAnswerUpstream upstream = new EarlyAnswerUpstream();
             ProxyUnderTest p = ProxyUnderTest.start(2, Map.of("MEGALLM_BASE_URL", upstream.baseUrl(),
                     "MAX_REQUEST_BODY", "64m"))) {
            // Far more than the socket buffers hold: still being written when the 401 arrives.
            char[] pad = new char[32 * 1024 * 1024];
            Arrays.fill(pad, 'x');
            String body = "{\"model\":\"m\",\"pad\":\"" + new String(pad) + "\"}";
            HttpResponse<String> r = p.send(HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(body)));
            assertEquals(200, r.statusCode(), r.body());
            assertEquals("{\"connection\":2}", r.body(), "the next key's request went on a fresh connection");
            assertEquals(0, upstream.requestsAfterEarlyAnswer.get());
        }
    }
}
