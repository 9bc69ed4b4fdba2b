package io.megallm.proxy.server.relay;

import io.megallm.proxy.server.testing.ProxyUnderTest;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Contract §6 and §9: what is refused before a key is spent, in the OpenAI error shape. */
class RequestGuardsTest {

    private static void assertError(String raw, int status, String code) {
        assertTrue(raw.startsWith("HTTP/1.1 " + status + " "), raw);
        assertTrue(raw.contains("{\"error\":{\"message\":"), raw);
        assertTrue(raw.contains("\"code\":\"" + code + "\""), raw);
        assertTrue(raw.toLowerCase().contains("content-type: application/json"), raw);
    }

    @Test
    void oversizedBodyByContentLengthIs413AndNothingGoesUpstream() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MAX_REQUEST_BODY", "1k"))) {
            String raw = RawHttp.exchange(p.port(), "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                    + "Content-Type: application/json\r\nContent-Length: 1025\r\n\r\n");
            assertError(raw, 413, "request_too_large");
            assertEquals(0, p.upstream.requestCount());
            // The proxy stays up for everyone else.
            assertEquals(200, p.chat().statusCode());
        }
    }

    @Test
    void oversizedChunkedBodyIs413AndNothingGoesUpstream() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MAX_REQUEST_BODY", "1k"))) {
            StringBuilder req = new StringBuilder("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                    + "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
            for (int i = 0; i < 3; i++) {
                req.append("200\r\n").append("a".repeat(512)).append("\r\n");
            }
            req.append("0\r\n\r\n");
            assertError(RawHttp.exchange(p.port(), req.toString()), 413, "request_too_large");
            assertEquals(0, p.upstream.requestCount());
        }
    }

    @Test
    void bodyExactlyAtTheLimitIsAccepted() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MAX_REQUEST_BODY", "1k"))) {
            String json = "{\"model\":\"" + "m".repeat(1024 - 12) + "\"}";
            assertEquals(1024, json.length());
            assertEquals(200, p.post("/v1/chat/completions", json).statusCode());
            assertEquals(json, p.upstream.take().bodyText());
        }
    }

    @Test
    void malformedJsonIs400AndNothingGoesUpstream() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            var r = p.post("/v1/chat/completions", "{\"model\": \"gpt-4o\", \"messages\": [");
            assertEquals(400, r.statusCode());
            assertTrue(r.body().contains("\"code\":\"invalid_json\""), r.body());
            assertTrue(r.body().contains("\"type\":\"invalid_request_error\""), r.body());
            assertEquals(0, p.upstream.requestCount());
        }
    }

    @Test
    void anEmptyBodyWithAJsonContentTypeIsForwarded() throws Exception {
        // The OpenAI SDKs send Content-Type: application/json on GET /v1/models.
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            var r = p.send(java.net.http.HttpRequest.newBuilder(p.uri("/v1/models"))
                    .header("Content-Type", "application/json").GET());
            assertEquals(200, r.statusCode());
            assertEquals(1, p.upstream.requestCount());
        }
    }

    @Test
    void requestWithBothContentLengthAndTransferEncodingIsRefused() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            String raw = RawHttp.exchange(p.port(), "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                    + "Content-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "2\r\n{}\r\n0\r\n\r\n");
            assertError(raw, 400, "request_smuggling");
            assertEquals(0, p.upstream.requestCount());
        }
    }

    @Test
    void malformedHttpIs400() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            String raw = RawHttp.exchange(p.port(), "THIS IS NOT HTTP\r\n\r\n");
            assertTrue(raw.startsWith("HTTP/1.1 400"), raw);
            assertTrue(raw.contains("{\"error\":{"), raw);
        }
    }

    @Test
    void oversizedHeadersAre431() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            String raw = RawHttp.exchange(p.port(), "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: "
                    + "b".repeat(40_000) + "\r\n\r\n");
            assertError(raw, 431, "headers_too_large");
            assertEquals(0, p.upstream.requestCount());
        }
    }

    @Test
    void unknownRouteIs404WithTheErrorShape() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            var r = p.get("/nope");
            assertEquals(404, r.statusCode());
            assertTrue(r.body().startsWith("{\"error\":{\"message\":"), r.body());
            assertTrue(r.body().contains("\"code\":\"not_found\""), r.body());
            assertFalse(r.body().contains("/v1"), r.body());
            // A client whose base URL lacks /v1 is told so.
            var bare = p.send(java.net.http.HttpRequest.newBuilder(p.uri("/chat/completions?x=1"))
                    .POST(java.net.http.HttpRequest.BodyPublishers.ofString("{}")));
            assertEquals(404, bare.statusCode());
            assertTrue(bare.body().contains("No route for POST /chat/completions. The API is under /v1: a client's base URL"
                    + " ends in /v1 (http://host:8000/v1)."), bare.body());
            assertEquals(0, p.upstream.requestCount());
        }
    }

    @Test
    void expectContinueIsAnsweredAndTheBodyForwarded() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            try (Socket s = RawHttp.connect(p.port())) {
                OutputStream out = s.getOutputStream();
                InputStream in = s.getInputStream();
                out.write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        + "Expect: 100-continue\r\nContent-Length: 2\r\n\r\n").getBytes(StandardCharsets.ISO_8859_1));
                out.flush();
                String interim = RawHttp.readHead(in, new ByteArrayOutputStream());
                assertTrue(interim.startsWith("HTTP/1.1 100"), interim);
                out.write("{}".getBytes(StandardCharsets.ISO_8859_1));
                out.flush();
                assertTrue(RawHttp.readResponse(in).startsWith("HTTP/1.1 200"));
            }
            assertEquals("{}", p.upstream.take().bodyText());
        }
    }

    @Test
    void headOnALocalRouteHasNoBodyAndKeepsTheConnectionUsable() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            try (Socket s = RawHttp.connect(p.port())) {
                OutputStream out = s.getOutputStream();
                InputStream in = s.getInputStream();
                out.write("HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1));
                out.flush();
                String head = RawHttp.readHead(in, new ByteArrayOutputStream());
                assertTrue(head.startsWith("HTTP/1.1 200"), head);
                assertTrue(head.toLowerCase().contains("content-length: "), head);
                // No body follows: the next bytes on the connection are the next response.
                out.write("GET /health HTTP/1.1\r\nHost: x\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1));
                out.flush();
                String next = RawHttp.readResponse(in);
                assertTrue(next.startsWith("HTTP/1.1 200"), next);
                assertTrue(next.contains("\"status\":\"healthy\""), next);
            }
        }
    }
}
