package io.megallm.proxy.server.relay;

import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Locale;
import java.util.Map;
import java.util.zip.GZIPInputStream;
import java.util.zip.GZIPOutputStream;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Review of the client-facing HTTP layer, over real sockets. */
class FrontReviewTest {

    /**
     * §9: a pool key in a relayed rejection is masked, also inside a gzip body. With the coding
     * split over two Content-Encoding fields ("identity", then "gzip": the coding list
     * "identity, gzip", which a client decodes as gzip), only the first field was read: the body
     * passed as it came, compressed, the key in it unmasked, and the client's decoder read it.
     */
    @Test
    void aPoolKeyInAGzipRejectionIsMaskedWhenTheCodingComesInTwoFields() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MAX_KEY_RETRIES", "0"))) {
            String key = p.keys.get(0);
            byte[] gz = gzip(("{\"error\":{\"message\":\"Incorrect API key provided: " + key + "\"}}")
                    .getBytes(StandardCharsets.UTF_8));
            p.upstream.otherwise((ctx, req) -> {
                byte[] head = ("HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                        + "Content-Encoding: identity\r\nContent-Encoding: gzip\r\n"
                        + "Content-Length: " + gz.length + "\r\n\r\n").getBytes(StandardCharsets.ISO_8859_1);
                byte[] all = Arrays.copyOf(head, head.length + gz.length);
                System.arraycopy(gz, 0, all, head.length, gz.length);
                ctx.pipeline().firstContext().writeAndFlush(Unpooled.wrappedBuffer(all));
            });
            byte[] answer = raw(p.port(), "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            String text = new String(answer, StandardCharsets.ISO_8859_1);
            int end = text.indexOf("\r\n\r\n");
            String head = text.substring(0, end);
            assertTrue(head.startsWith("HTTP/1.1 401"), head);
            byte[] body = Arrays.copyOfRange(answer, end + 4, answer.length);
            String seen = head.toLowerCase(Locale.ROOT).contains("content-encoding: gzip")
                    ? new String(new GZIPInputStream(new ByteArrayInputStream(body)).readAllBytes(), StandardCharsets.UTF_8)
                    : new String(body, StandardCharsets.UTF_8);
            assertFalse(seen.contains(key), "the client decoded the pool key in full: " + seen.replace(key, "<KEY>"));
        }
    }

    /**
     * §9 again, with the gzip as a transfer coding ("Transfer-Encoding: gzip, chunked"): the
     * chunks were taken off and the Transfer-Encoding dropped, but the gzip'd bytes went to the
     * client as they were, the key in them unmasked (and nothing in the head saying how to read them).
     */
    @Test
    void aPoolKeyInARejectionWithAGzipTransferCodingIsMasked() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MAX_KEY_RETRIES", "0"))) {
            String key = p.keys.get(0);
            byte[] gz = gzip(("{\"error\":{\"message\":\"Incorrect API key provided: " + key + "\"}}")
                    .getBytes(StandardCharsets.UTF_8));
            p.upstream.otherwise((ctx, req) -> {
                ByteArrayOutputStream out = new ByteArrayOutputStream();
                out.writeBytes(("HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                        + "Transfer-Encoding: gzip, chunked\r\n\r\n" + Integer.toHexString(gz.length) + "\r\n")
                        .getBytes(StandardCharsets.ISO_8859_1));
                out.writeBytes(gz);
                out.writeBytes("\r\n0\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1));
                ctx.pipeline().firstContext().writeAndFlush(Unpooled.wrappedBuffer(out.toByteArray()));
            });
            byte[] answer = raw(p.port(), "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            String text = new String(answer, StandardCharsets.ISO_8859_1);
            int end = text.indexOf("\r\n\r\n");
            String head = text.substring(0, end);
            assertTrue(head.startsWith("HTTP/1.1 401"), head);
            byte[] body = Arrays.copyOfRange(answer, end + 4, answer.length);
            String seen = body.length > 2 && body[0] == (byte) 0x1f && body[1] == (byte) 0x8b
                    ? new String(new GZIPInputStream(new ByteArrayInputStream(body)).readAllBytes(), StandardCharsets.UTF_8)
                    : new String(body, StandardCharsets.UTF_8);
            assertFalse(seen.contains(key), "the pool key reached the client in gzip'd bytes: " + seen.replace(key, "<KEY>"));
        }
    }

    /**
     * §6: every header named in the client's Connection header is not forwarded. An
     * X-Forwarded-For so named still crossed: its value went upstream inside the proxy's own
     * X-Forwarded-For, as if a hop had added it.
     */
    @Test
    void anXForwardedForNamedInConnectionDoesNotCross() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            p.upstream.otherwise(io.megallm.proxy.testing.MockUpstream.json(200, "{}"));
            String answer = new String(raw(p.port(), "GET /v1/models HTTP/1.1\r\nHost: x\r\n"
                    + "Connection: close, X-Forwarded-For\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n"),
                    StandardCharsets.ISO_8859_1);
            assertTrue(answer.startsWith("HTTP/1.1 200"), answer);
            org.junit.jupiter.api.Assertions.assertEquals("127.0.0.1",
                    p.upstream.take().headers().get("X-Forwarded-For"));
        }
    }

    static byte[] gzip(byte[] plain) throws java.io.IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (GZIPOutputStream z = new GZIPOutputStream(out)) {
            z.write(plain);
        }
        return out.toByteArray();
    }

    static byte[] raw(int port, String request) throws Exception {
        try (Socket s = new Socket("127.0.0.1", port)) {
            s.setSoTimeout(10_000);
            s.getOutputStream().write(request.getBytes(StandardCharsets.ISO_8859_1));
            s.getOutputStream().flush();
            InputStream in = s.getInputStream();
            return in.readAllBytes();
        }
    }
}
