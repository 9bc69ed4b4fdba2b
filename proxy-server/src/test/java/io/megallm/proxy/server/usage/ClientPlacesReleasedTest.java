package io.megallm.proxy.server.usage;

import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;

import java.io.InputStream;
import java.net.Socket;
import java.net.http.HttpRequest;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * README "Usage and limits": a request holds its place in flight (and a stream its slot of
 * {@code max_streams}) from the body check until its exchange ends, however it ends. Each path an
 * exchange can end by, over real sockets, with a client of {@code max_streams=1}: after it the
 * client shows no open stream and its next stream is admitted.
 */
class ClientPlacesReleasedTest {

    private static final String KEY = "ck-place-00000000000000001";
    private static final String STREAM = "{\"model\":\"m\",\"stream\":true}";

    private static Socket open(ProxyUnderTest p, String body) throws Exception {
        Socket s = new Socket("127.0.0.1", p.port());
        s.setSoTimeout(30_000);
        s.getOutputStream().write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY
                + "\r\nContent-Type: application/json\r\nContent-Length: " + body.length() + "\r\n\r\n" + body)
                .getBytes(StandardCharsets.ISO_8859_1));
        return s;
    }

    /** Reads until {@code text} came (or the connection ended); what came. */
    private static String readUntil(Socket s, String text) throws Exception {
        StringBuilder seen = new StringBuilder();
        InputStream in = s.getInputStream();
        byte[] buf = new byte[4096];
        while (!seen.toString().contains(text)) {
            int n;
            try {
                n = in.read(buf);
            } catch (java.net.SocketException e) {
                break;
            }
            if (n < 0) {
                break;
            }
            seen.append(new String(buf, 0, n, StandardCharsets.ISO_8859_1));
        }
        return seen.toString();
    }

    private static void awaitUpstream(ProxyUnderTest p, int count) throws InterruptedException {
        for (int i = 0; i < 1000 && p.upstream.requestCount() < count; i++) {
            Thread.sleep(10);
        }
        assertTrue(p.upstream.requestCount() >= count, "the upstream saw " + p.upstream.requestCount());
    }

    /** The client's open streams go back to 0 (the exchange's end is reported a moment after the close). */
    private static void awaitNoOpenStream(ProxyUnderTest p, String path) throws Exception {
        String usage = "";
        for (int i = 0; i < 500; i++) {
            usage = p.get("/admin/usage").body();
            if (usage.contains("\"open_streams\":0")) {
                return;
            }
            Thread.sleep(10);
        }
        throw new AssertionError(path + ": the stream slot was not given back: " + usage);
    }

    private static void nextStreamIsAdmitted(ProxyUnderTest p, String path) throws Exception {
        p.upstream.otherwise(MockUpstream.sse(2, 1));
        var r = p.send(HttpRequest.newBuilder(p.uri("/v1/chat/completions")).header("Content-Type", "application/json")
                .header("Authorization", "Bearer " + KEY).POST(HttpRequest.BodyPublishers.ofString(STREAM)));
        assertEquals(200, r.statusCode(), path + ": " + r.body());
        awaitNoOpenStream(p, path);
    }

    @Test
    void everyWayAnExchangeEndsGivesTheStreamSlotBack() throws Exception {
        Path file = Files.createTempDirectory("clients").resolve("clients.txt");
        Files.writeString(file, KEY + " name=placed max_streams=1\n");
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of("PROXY_API_KEYS", "@" + file, "MEGALLM_TIMEOUT", "1",
                "MEGALLM_MAX_RETRIES", "0", "KEY_WAIT", "30"))) {
            String k0 = p.keys.get(0);
            String k1 = p.keys.get(1);

            // The client leaves before the upstream answered.
            p.upstream.otherwise(MockUpstream.stall());
            int seen = p.upstream.requestCount();
            try (Socket s = open(p, STREAM)) {
                awaitUpstream(p, seen + 1);
            }
            awaitNoOpenStream(p, "client gone before the answer");
            nextStreamIsAdmitted(p, "client gone before the answer");

            // The upstream never answers: 504 after the timeout (and its one resend).
            p.upstream.otherwise(MockUpstream.stall());
            try (Socket s = open(p, STREAM)) {
                assertTrue(readUntil(s, "upstream_timeout").contains(" 504 "));
            }
            nextStreamIsAdmitted(p, "upstream timeout");

            // The client leaves in the middle of the stream.
            p.upstream.otherwise(MockUpstream.sse(1000, 5));
            try (Socket s = open(p, STREAM)) {
                readUntil(s, "tok3");
            }
            nextStreamIsAdmitted(p, "client gone mid-stream");

            // The upstream breaks off in the middle of the stream.
            p.upstream.otherwise(MockUpstream.sseThenDrop(3, 1));
            try (Socket s = open(p, STREAM)) {
                readUntil(s, "\u0000never");
            }
            nextStreamIsAdmitted(p, "upstream cut mid-stream");

            // Failover: the first key is rate-limited, the second answers.
            p.upstream.on(k0, MockUpstream.json(429, "{\"error\":{\"message\":\"slow down\"}}", Map.of("Retry-After", "1")));
            p.upstream.on(k1, MockUpstream.sse(2, 1));
            try (Socket s = open(p, STREAM)) {
                assertTrue(readUntil(s, "[DONE]").contains("tok1"));
            }
            nextStreamIsAdmitted(p, "failover");

            // Every key rests: the request waits for one, and the client leaves while it waits.
            MockUpstream.Behavior busy = MockUpstream.json(429, "{\"error\":{\"message\":\"slow down\"}}",
                    Map.of("Retry-After", "20"));
            p.upstream.on(k0, busy).on(k1, busy);
            seen = p.upstream.requestCount();
            try (Socket s = open(p, STREAM)) {
                awaitUpstream(p, seen + 2);
            }
            awaitNoOpenStream(p, "every key rate-limited");
            seen = p.upstream.requestCount();
            try (Socket s = open(p, STREAM)) {
                // Waiting: nothing goes upstream and no answer comes; then the client leaves.
                s.setSoTimeout(300);
                assertThrowsTimeout(s);
                assertEquals(seen, p.upstream.requestCount());
            }
            awaitNoOpenStream(p, "client gone while waiting for a key");
        }
    }

    private static void assertThrowsTimeout(Socket s) throws Exception {
        try {
            int n = s.getInputStream().read();
            throw new AssertionError("an answer came while every key rests: " + n);
        } catch (java.net.SocketTimeoutException e) {
            // still waiting for a key, as it should
        }
    }
}
