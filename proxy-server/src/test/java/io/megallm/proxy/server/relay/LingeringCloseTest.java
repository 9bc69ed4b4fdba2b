package io.megallm.proxy.server.relay;

import io.megallm.proxy.server.testing.ProxyUnderTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

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

    /** The answer is given on the head: the body too large by its declared length, or a bad client key. */
    @ParameterizedTest
    @CsvSource({"MAX_REQUEST_BODY, 1k, '', 413, request_too_large",
            "PROXY_API_KEYS, ck-good-000000000000000001, 'Authorization: Bearer ck-wrong', 401, invalid_api_key"})
    void anAnswerOnTheHeadReachesAClientThatUploadsItsWholeBodyFirst(String setting, String value, String header,
                                                                     int status, String code) throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of(setting, value))) {
            String answer = uploadThenRead(p.port(), post(header.isEmpty() ? "" : header + "\r\n"));
            assertTrue(answer.startsWith("HTTP/1.1 " + status), answer);
            assertTrue(answer.contains("\"code\":\"" + code + "\""), answer);
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

    /**
     * What a lingering close costs and how long: a client that is answered 413 and then sends
     * without end holds its connection (and its MAX_CONNECTIONS place) until the linger's bound
     * (CLIENT_HEADER_TIMEOUT here, under 10 s), then it is closed and the place comes back.
     */
    @Test
    void aClientThatSendsWithoutEndAfterItsAnswerIsClosedAtTheLingersBound() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MAX_REQUEST_BODY", "1k",
                "CLIENT_HEADER_TIMEOUT", "1", "MAX_CONNECTIONS", "1"));
             Socket s = RawHttp.connect(p.port())) {
            OutputStream out = s.getOutputStream();
            out.write(("POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Length: 1000000000\r\n\r\n")
                    .getBytes(StandardCharsets.ISO_8859_1));
            InputStream in = s.getInputStream();
            String head = RawHttp.readHead(in, new java.io.ByteArrayOutputStream());
            assertTrue(head.startsWith("HTTP/1.1 413"), head);
            assertTrue(RawHttp.exchange(p.port(), "GET /health HTTP/1.1\r\nHost: x\r\n\r\n").startsWith("HTTP/1.1 503"),
                    "while it lingers, the connection keeps its place");
            byte[] piece = new byte[16 * 1024];
            boolean cut = false;
            for (int i = 0; i < 1_000_000 && !cut; i++) {
                try {
                    out.write(piece);
                    out.flush();
                    Thread.onSpinWait();
                } catch (IOException e) {
                    cut = true; // the proxy closed the connection under the writes
                }
            }
            assertTrue(cut, "a client that sends without end is closed");
            String health = "";
            for (int i = 0; i < 100 && !health.startsWith("HTTP/1.1 200"); i++) {
                health = RawHttp.exchange(p.port(), "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            }
            assertTrue(health.startsWith("HTTP/1.1 200"), "its place came back: " + health);
        }
    }
}
