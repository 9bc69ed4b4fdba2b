package io.megallm.proxy.server.relay;

import io.megallm.proxy.server.testing.ProxyUnderTest;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Audit with the OpenAI Node SDK (2026-12-07): an answer given before the body was read (413 on
 * the declared length, 401 for a bad client key, 429 over rpm) was followed by a plain close; the
 * client, still uploading, got a reset that threw the answer away ("Connection error." after
 * three uploads). Now the close lingers: our side shut, the rest of the body read and dropped.
 * Each client here uploads its whole body before it reads a byte, as a client library may.
 */
class LingeringCloseTest {

    private static final int BODY = 4 * 1024 * 1024;

    /** Sends the head and the whole body, then reads the answer to the end. */
    private static String uploadThenRead(int port, String head) throws IOException {
        try (Socket s = RawHttp.connect(port)) {
            OutputStream out = s.getOutputStream();
            out.write(head.getBytes(StandardCharsets.ISO_8859_1));
            byte[] piece = new byte[64 * 1024];
            java.util.Arrays.fill(piece, (byte) 'x');
            piece[0] = '{';
            for (int sent = 0; sent < BODY; sent += piece.length) {
                out.write(piece);
                piece[0] = 'x';
            }
            out.flush();
            InputStream in = s.getInputStream();
            String answer = new String(in.readAllBytes(), StandardCharsets.ISO_8859_1);
            return answer;
        }
    }

    private static String post(String extra) {
        return "POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n" + extra
                + "Content-Length: " + BODY + "\r\n\r\n";
    }

    @Test
    void aBodyTooLargeIsAnswered413AndTheClientReadsItAfterItsUpload() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MAX_REQUEST_BODY", "1k"))) {
            String answer = uploadThenRead(p.port(), post(""));
            assertTrue(answer.startsWith("HTTP/1.1 413"), answer);
            assertTrue(answer.contains("\"code\":\"request_too_large\""), answer);
            assertEquals(0, p.upstream.requestCount());
        }
    }

    @Test
    void aBadClientKeyIsAnswered401AndTheClientReadsItAfterItsUpload() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("PROXY_API_KEYS", "ck-good-000000000000000001"))) {
            String answer = uploadThenRead(p.port(), post("Authorization: Bearer ck-wrong\r\n"));
            assertTrue(answer.startsWith("HTTP/1.1 401"), answer);
            assertTrue(answer.contains("\"code\":\"invalid_api_key\""), answer);
            assertEquals(0, p.upstream.requestCount());
        }
    }

    @Test
    void aClientOverItsRpmIsAnswered429WithRetryAfterAfterItsUpload() throws Exception {
        java.nio.file.Path file = java.nio.file.Files.createTempDirectory("clients").resolve("clients.txt");
        java.nio.file.Files.writeString(file, "ck-rpm-0000000000000000001 name=one rpm=1\n");
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("PROXY_API_KEYS", "@" + file, "MAX_REQUEST_BODY", "10m"))) {
            String auth = "Authorization: Bearer ck-rpm-0000000000000000001\r\n";
            assertTrue(RawHttp.exchange(p.port(), "POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\n" + auth
                    + "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
                    .startsWith("HTTP/1.1 200"));
            String answer = uploadThenRead(p.port(), post(auth));
            assertTrue(answer.startsWith("HTTP/1.1 429"), answer);
            assertTrue(answer.toLowerCase(java.util.Locale.ROOT).contains("\r\nretry-after: "), answer);
            assertEquals(1, p.upstream.requestCount());
        }
    }
}
