package io.megallm.proxy.http;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.EmptyHttpHeaders;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponseDecoder;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class RequestReaderTest {

    private static final JsonFactory JSON = new JsonFactory();
    private static final long MAX_BODY = 1024;

    /** One decoded response as the client would see it. */
    record Resp(int status, HttpHeaders headers, String body) {
    }

    /** What a router saw of one request, copied out while the request was alive. */
    record Seen(HttpMethod method, String uri, String path, RequestHeaders headers, String body, String requestId) {
    }

    private final ServerLifecycle lifecycle = new ServerLifecycle();
    private final List<Seen> seen = new ArrayList<>();
    private final List<ByteBuf> capturedBodies = new ArrayList<>();
    private final List<ByteBuf> mine = new ArrayList<>();
    private EmbeddedChannel channel;

    @AfterEach
    void releaseLeftovers() {
        if (channel != null) {
            channel.finishAndReleaseAll();
        }
        for (ByteBuf b : mine) {
            if (b.refCnt() > 0) {
                b.release(b.refCnt());
            }
        }
    }

    // ---- harness ----

    private EmbeddedChannel open(RequestRouter router, long maxBody) {
        channel = new EmbeddedChannel(
                new ResponseEncoder(),
                new RequestReader(router, maxBody, lifecycle));
        return channel;
    }

    private EmbeddedChannel open(RequestRouter router, long maxBody, HeadCheck check) {
        channel = new EmbeddedChannel(
                new ResponseEncoder(),
                new RequestReader(router, maxBody, lifecycle, ExchangeObserver.NONE, ClientLimits.unlimited(), check));
        return channel;
    }

    /** A router that checks the body's structure and content while it is alive, then answers 200. */
    private RequestRouter structureChecking(String expected, AtomicInteger components) {
        return exchange -> {
            ByteBuf body = exchange.request().body();
            components.set(body instanceof CompositeByteBuf c ? c.numComponents() : 1);
            assertEquals(expected.length(), body.readableBytes());
            assertEquals(expected, body.toString(StandardCharsets.ISO_8859_1));
            exchange.respond(ErrorResponses.json(exchange.alloc(), HttpResponseStatus.OK, "{}"));
        };
    }

    /** A router that records the request and answers 200 with a small JSON body at once. */
    private RequestRouter answering() {
        return exchange -> {
            record(exchange);
            exchange.respond(ErrorResponses.json(exchange.alloc(), HttpResponseStatus.OK, "{\"ok\":true}"));
        };
    }

    private RequestRouter neverCalled() {
        return exchange -> {
            throw new AssertionError("the router must not be called");
        };
    }

    private void record(Exchange exchange) {
        InboundRequest r = exchange.request();
        seen.add(new Seen(r.method(), r.uri(), r.path(), r.headers(),
                r.body().toString(StandardCharsets.UTF_8), r.requestId()));
        if (r.body() != Unpooled.EMPTY_BUFFER) {
            capturedBodies.add(r.body());
        }
    }

    private void write(String raw) {
        channel.writeInbound(Unpooled.copiedBuffer(raw, StandardCharsets.ISO_8859_1));
        channel.runPendingTasks();
    }

    /** Decodes and releases every byte the proxy wrote so far. */
    private List<Resp> responses() {
        channel.runPendingTasks();
        EmbeddedChannel client = new EmbeddedChannel(new HttpResponseDecoder(), new HttpObjectAggregator(1 << 20));
        Object o;
        while ((o = channel.readOutbound()) != null) {
            assertTrue(o instanceof ByteBuf, "the encoder writes bytes, got " + o);
            client.writeInbound(o);
        }
        List<Resp> out = new ArrayList<>();
        FullHttpResponse r;
        while ((r = client.readInbound()) != null) {
            try {
                out.add(new Resp(r.status().code(), r.headers().copy(), r.content().toString(StandardCharsets.UTF_8)));
            } finally {
                r.release();
            }
        }
        assertFalse(client.finishAndReleaseAll(), "a partial response was written");
        return out;
    }

    private Resp onlyResponse() {
        List<Resp> all = responses();
        assertEquals(1, all.size(), all.toString());
        return all.get(0);
    }

    /** Parses {"error":{"message":…,"type":…,"code":…}} strictly and returns the three fields. */
    private static Map<String, String> errorBody(Resp resp) throws IOException {
        assertTrue(resp.headers().get("content-type").startsWith("application/json"), resp.headers().toString());
        assertEquals(resp.body().getBytes(StandardCharsets.UTF_8).length, resp.headers().getInt("content-length"));
        Map<String, String> fields = new HashMap<>();
        try (JsonParser p = JSON.createParser(resp.body())) {
            assertEquals(JsonToken.START_OBJECT, p.nextToken());
            assertEquals(JsonToken.FIELD_NAME, p.nextToken());
            assertEquals("error", p.currentName());
            assertEquals(JsonToken.START_OBJECT, p.nextToken());
            JsonToken t;
            while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                assertEquals(JsonToken.VALUE_STRING, p.nextToken(), name);
                assertNull(fields.put(name, p.getText()), "duplicate " + name);
            }
            assertEquals(JsonToken.END_OBJECT, t);
            assertEquals(JsonToken.END_OBJECT, p.nextToken());
            assertNull(p.nextToken());
        }
        assertEquals(Map.of("message", fields.get("message"), "type", fields.get("type"), "code", fields.get("code")),
                fields, "exactly message, type and code");
        assertFalse(fields.get("message").isBlank());
        return fields;
    }

    private void assertFinishedCleanly() {
        assertEquals(0, lifecycle.inFlight());
        for (ByteBuf b : capturedBodies) {
            assertEquals(0, b.refCnt(), "request body not released");
        }
        assertFalse(channel.finishAndReleaseAll(), "messages left in the channel");
    }

    // ---- (a) chunked body ----

    @Test
    void anErrorInsideTheProxyIsAnswered500OrClosesTheConnectionAndIsLoggedWithItsTrace() {
        // Before, an Error was taken for a client's broken pipe (DEBUG only): an OutOfMemoryError
        // while answering /metrics left an empty reply and no line at all.
        ch.qos.logback.classic.Logger logger = (ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory
                .getLogger(RequestReader.class);
        ch.qos.logback.core.read.ListAppender<ch.qos.logback.classic.spi.ILoggingEvent> seenLog =
                new ch.qos.logback.core.read.ListAppender<>();
        seenLog.start();
        logger.addAppender(seenLog);
        try {
            open(exchange -> {
                throw new OutOfMemoryError("Java heap space");
            }, MAX_BODY);
            write("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
            List<Resp> answered = responses();
            assertEquals(1, answered.size());
            assertEquals(500, answered.get(0).status());
            assertTrue(answered.get(0).body().contains("\"code\":\"internal_error\""), answered.get(0).body());
            channel.finishAndReleaseAll();

            open(exchange -> {
                throw new StackOverflowError("a bug in a route");
            }, MAX_BODY);
            write("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
            assertFalse(channel.isOpen(), "the connection of the failed request is closed");
            assertEquals(2, seenLog.list.size(), seenLog.list.toString());
            for (ch.qos.logback.classic.spi.ILoggingEvent e : seenLog.list) {
                assertEquals(ch.qos.logback.classic.Level.ERROR, e.getLevel());
                assertNotNull(e.getThrowableProxy(), "logged with its trace");
            }
        } finally {
            logger.detachAppender(seenLog);
        }
    }

    @Test
    void chunkedBodyReachesTheRouterIntactAndIsReleasedAfterTheAnswer() {
        AtomicInteger componentsSeen = new AtomicInteger(-1);
        AtomicInteger refCntDuringRoute = new AtomicInteger(-1);
        AtomicInteger refCntAfterRespond = new AtomicInteger(-1);
        open(exchange -> {
            record(exchange);
            ByteBuf body = exchange.request().body();
            refCntDuringRoute.set(body.refCnt());
            if (body instanceof CompositeByteBuf composite) {
                componentsSeen.set(composite.numComponents());
            }
            exchange.respond(ErrorResponses.json(exchange.alloc(), HttpResponseStatus.OK, "{\"ok\":true}"));
            refCntAfterRespond.set(body.refCnt());
        }, MAX_BODY);

        write("POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n"
                + "Transfer-Encoding: chunked\r\n\r\n");
        write("9\r\n{\"model\":\r\n");
        write("8\r\n\"gpt-4o\"\r\n");
        write("e\r\n,\"stream\":true\r\n");
        assertTrue(seen.isEmpty(), "routed before the body ended");
        write("1\r\n}\r\n0\r\n\r\n");

        assertEquals(1, seen.size());
        Seen s = seen.get(0);
        assertEquals(HttpMethod.POST, s.method());
        assertEquals("/v1/chat/completions?x=1", s.uri());
        assertEquals("/v1/chat/completions", s.path());
        assertEquals("{\"model\":\"gpt-4o\",\"stream\":true}", s.body());
        assertEquals(1, refCntDuringRoute.get());
        // Was 4 (a slice per chunk): small pieces are now copied into one buffer, so that a body of
        // tiny chunks costs its bytes, not a buffer object each.
        assertEquals(-1, componentsSeen.get(), "small chunks are gathered in one buffer");
        assertEquals(0, refCntAfterRespond.get(), "respond must release the body");

        Resp resp = onlyResponse();
        assertEquals(200, resp.status());
        assertEquals("{\"ok\":true}", resp.body());
        assertTrue(channel.isOpen());
        assertFinishedCleanly();
    }

    @Test
    void contentLengthBodyReachesTheRouterEvenWhenSplitAcrossReads() {
        open(answering(), MAX_BODY);

        write("POST /v1/embeddings HTTP/1.1\r\nHost: proxy\r\nContent-Length: 13\r\n\r\n{\"inp");
        assertTrue(seen.isEmpty());
        write("ut\":\"x\"}");

        assertEquals(1, seen.size());
        assertEquals("{\"input\":\"x\"}", seen.get(0).body());
        assertEquals(200, onlyResponse().status());
        assertFinishedCleanly();
    }

    @Test
    void bodyExactlyAtTheLimitIsAccepted() {
        open(answering(), 10);

        write("POST /v1/x HTTP/1.1\r\nHost: p\r\nContent-Length: 10\r\n\r\n0123456789");

        assertEquals(1, seen.size());
        assertEquals("0123456789", seen.get(0).body());
        assertEquals(200, onlyResponse().status());
        assertFinishedCleanly();
    }

    @Test
    void requestWithoutBodyIsRouted() {
        open(answering(), MAX_BODY);

        write("GET /health HTTP/1.1\r\nHost: proxy\r\n\r\n");

        assertEquals(1, seen.size());
        assertEquals("", seen.get(0).body());
        assertEquals(HttpMethod.GET, seen.get(0).method());
        assertEquals(200, onlyResponse().status());
        assertEquals(0, lifecycle.inFlight());
        assertFalse(channel.finishAndReleaseAll());
    }

    // ---- (b) Content-Length over the limit ----

    @Test
    void declaredBodyOverTheLimitIs413WithoutRouting() throws IOException {
        open(neverCalled(), 100);

        write("POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\nContent-Type: application/json\r\n"
                + "Content-Length: 101\r\n\r\n" + "x".repeat(101));

        Resp resp = onlyResponse();
        assertEquals(413, resp.status());
        Map<String, String> error = errorBody(resp);
        assertEquals("request_too_large", error.get("code"));
        assertEquals(ErrorResponses.INVALID_REQUEST, error.get("type"));
        assertEquals("close", resp.headers().get("connection"));
        assertFalse(channel.isOpen(), "the connection closes after a rejection");
        assertFinishedCleanly();
    }

    // ---- (c) chunked body over the limit ----

    @Test
    void chunkedBodyOverTheLimitIs413WithoutRoutingOrLeak() throws IOException {
        open(neverCalled(), 10);
        ByteBuf wire = Unpooled.copiedBuffer("POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\n"
                + "Transfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n6\r\n6789ab\r\n6\r\ncdefgh\r\n0\r\n\r\n",
                StandardCharsets.ISO_8859_1);
        mine.add(wire);

        channel.writeInbound(wire);
        channel.runPendingTasks();

        Resp resp = onlyResponse();
        assertEquals(413, resp.status());
        assertEquals("request_too_large", errorBody(resp).get("code"));
        assertFalse(channel.isOpen());
        assertEquals(0, wire.refCnt(), "the received bytes (and every slice of them) were released");
        assertFinishedCleanly();
    }

    @Test
    void chunkedBodyOverTheLimitAcrossSeveralWritesIs413() throws IOException {
        open(neverCalled(), 10);

        write("POST /v1/x HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n");
        write("6\r\n012345\r\n");
        assertTrue(channel.outboundMessages().isEmpty(), "still within the limit");
        write("6\r\n6789ab\r\n");

        Resp resp = onlyResponse();
        assertEquals(413, resp.status());
        assertEquals("request_too_large", errorBody(resp).get("code"));
        assertFinishedCleanly();
    }

    @Test
    void invalidChunkSizeMidBodyIs400AndReleasesThePartialBody() throws IOException {
        open(neverCalled(), MAX_BODY);
        ByteBuf wire = Unpooled.copiedBuffer("POST /v1/x HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n", StandardCharsets.ISO_8859_1);
        mine.add(wire);

        channel.writeInbound(wire);
        channel.runPendingTasks();

        Resp resp = onlyResponse();
        assertEquals(400, resp.status());
        assertEquals(ErrorResponses.INVALID_REQUEST, errorBody(resp).get("type"));
        assertFalse(channel.isOpen());
        assertEquals(0, wire.refCnt());
        assertFinishedCleanly();
    }

    @Test
    void expectContinueGets100ThenTheAnswer() {
        open(answering(), MAX_BODY);

        write("POST /v1/x HTTP/1.1\r\nHost: p\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
        assertTrue(seen.isEmpty());
        write("{}");

        List<Resp> all = responses();
        assertEquals(List.of(100, 200), all.stream().map(Resp::status).toList());
        assertEquals("{}", seen.get(0).body());
        assertFalse(seen.get(0).headers().contains("expect"));
        assertFinishedCleanly();
    }

    @Test
    void expectContinueWithBodyOverTheLimitGets413Without100() throws IOException {
        open(neverCalled(), 10);

        write("POST /v1/x HTTP/1.1\r\nHost: p\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n");

        Resp resp = onlyResponse();
        assertEquals(413, resp.status());
        errorBody(resp);
        assertFinishedCleanly();
    }

    // ---- (d) request smuggling ----

    @Test
    void contentLengthWithChunkedTransferEncodingIs400Smuggling() throws IOException {
        open(neverCalled(), MAX_BODY);

        write("POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\nContent-Length: 5\r\n"
                + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");

        Resp resp = onlyResponse();
        assertEquals(400, resp.status());
        Map<String, String> error = errorBody(resp);
        assertEquals("request_smuggling", error.get("code"));
        assertEquals(ErrorResponses.INVALID_REQUEST, error.get("type"));
        assertFalse(channel.isOpen());
        assertFinishedCleanly();
    }

    @Test
    void transferEncodingBeforeContentLengthIsAlso400Smuggling() throws IOException {
        open(neverCalled(), MAX_BODY);

        write("POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n"
                + "Content-Length: 0\r\n\r\n5\r\nhello\r\n0\r\n\r\n");

        Resp resp = onlyResponse();
        assertEquals(400, resp.status());
        assertEquals("request_smuggling", errorBody(resp).get("code"));
        assertFinishedCleanly();
    }

    @Test
    void contentLengthWithChunkedAfterAnotherCodingIs400Smuggling() throws IOException {
        open(neverCalled(), MAX_BODY);

        write("POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\nContent-Length: 5\r\n"
                + "Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");

        Resp resp = onlyResponse();
        assertEquals(400, resp.status());
        assertEquals("request_smuggling", errorBody(resp).get("code"));
        assertFinishedCleanly();
    }

    @Test
    void contentLengthWithNonChunkedTransferEncodingIs400() throws IOException {
        open(neverCalled(), MAX_BODY);

        write("POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\nContent-Length: 5\r\n"
                + "Transfer-Encoding: identity\r\n\r\nhello");

        // Both headers: refused as smuggling before the coding is looked at; a 400 either way, and
        // nothing is forwarded.
        Resp resp = onlyResponse();
        assertEquals(400, resp.status());
        assertEquals(ErrorResponses.INVALID_REQUEST, errorBody(resp).get("type"));
        assertFalse(channel.isOpen());
        assertFinishedCleanly();
    }

    @Test
    void duplicateContentLengthIs400() throws IOException {
        open(neverCalled(), MAX_BODY);

        write("POST /v1/x HTTP/1.1\r\nHost: p\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!");

        Resp resp = onlyResponse();
        assertEquals(400, resp.status());
        errorBody(resp);
        assertFinishedCleanly();
    }

    // ---- (e) malformed HTTP ----

    @Test
    void garbageRequestLineIs400() throws IOException {
        open(neverCalled(), MAX_BODY);

        write("THIS IS NOT-HTTP\r\nHost: p\r\n\r\n");

        Resp resp = onlyResponse();
        assertEquals(400, resp.status());
        Map<String, String> error = errorBody(resp);
        assertEquals(ErrorResponses.INVALID_REQUEST, error.get("type"));
        assertFalse(channel.isOpen());
        assertFinishedCleanly();
    }

    @Test
    void singleWordRequestLineIs400() throws IOException {
        open(neverCalled(), MAX_BODY);

        write("GARBAGE\r\n\r\n");

        Resp resp = onlyResponse();
        assertEquals(400, resp.status());
        assertEquals("malformed_http", errorBody(resp).get("code"));
        assertFinishedCleanly();
    }

    @Test
    void tlsHandshakeOnThePlainPortIs400() throws IOException {
        open(neverCalled(), MAX_BODY);
        ByteBuf hello = Unpooled.wrappedBuffer(new byte[] {
                0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, (byte) 0xfc, 0x03, 0x03, 0x0a, 0x0d, 0x0a});

        channel.writeInbound(hello);
        channel.runPendingTasks();

        Resp resp = onlyResponse();
        assertEquals(400, resp.status());
        errorBody(resp);
        assertFalse(channel.isOpen());
        assertFinishedCleanly();
    }

    @Test
    void invalidHeaderLineIs400() throws IOException {
        open(neverCalled(), MAX_BODY);

        write("GET /health HTTP/1.1\r\nHost: p\r\nno colon here\r\n\r\n");

        Resp resp = onlyResponse();
        assertEquals(400, resp.status());
        errorBody(resp);
        assertFinishedCleanly();
    }

    @Test
    void invalidContentLengthIs400() throws IOException {
        open(neverCalled(), MAX_BODY);

        write("POST /v1/x HTTP/1.1\r\nHost: p\r\nContent-Length: abc\r\n\r\n");

        Resp resp = onlyResponse();
        assertEquals(400, resp.status());
        errorBody(resp);
        assertFinishedCleanly();
    }

    // ---- (f) oversized head ----

    @Test
    void headersLargerThanTheDecoderAllowsAre431() throws IOException {
        int limit = RequestHeadParser.MAX_HEADER_SECTION;
        open(neverCalled(), MAX_BODY);

        write("GET /health HTTP/1.1\r\nHost: p\r\nX-Big: " + "a".repeat(limit + 1) + "\r\n\r\n");

        Resp resp = onlyResponse();
        assertEquals(431, resp.status());
        Map<String, String> error = errorBody(resp);
        assertEquals("headers_too_large", error.get("code"));
        assertFalse(channel.isOpen());
        assertFinishedCleanly();
    }

    @Test
    void manyHeadersAddingUpOverTheLimitAre431() throws IOException {
        int limit = RequestHeadParser.MAX_HEADER_SECTION;
        StringBuilder head = new StringBuilder("GET /health HTTP/1.1\r\nHost: p\r\n");
        for (int i = 0; head.length() < limit + 2000; i++) {
            head.append("X-H").append(i).append(": ").append("v".repeat(50)).append("\r\n");
        }
        open(neverCalled(), MAX_BODY);

        write(head.append("\r\n").toString());

        Resp resp = onlyResponse();
        assertEquals(431, resp.status());
        assertEquals("headers_too_large", errorBody(resp).get("code"));
        assertFinishedCleanly();
    }

    @Test
    void requestLineLongerThanTheDecoderAllowsIs414() throws IOException {
        int limit = RequestHeadParser.MAX_REQUEST_LINE;
        open(neverCalled(), MAX_BODY);

        write("GET /" + "a".repeat(limit + 1) + " HTTP/1.1\r\nHost: p\r\n\r\n");

        Resp resp = onlyResponse();
        assertEquals(414, resp.status());
        assertEquals("uri_too_long", errorBody(resp).get("code"));
        assertFinishedCleanly();
    }

    // ---- (g) request id ----

    @Test
    void clientRequestIdIsKeptAndReturned() {
        open(answering(), MAX_BODY);

        write("GET /health HTTP/1.1\r\nHost: p\r\nX-Request-Id: client-abc-123\r\n\r\n");

        assertEquals("client-abc-123", seen.get(0).requestId());
        assertEquals(List.of("client-abc-123"), onlyResponse().headers().getAll("x-request-id"));
        assertFinishedCleanly();
    }

    @Test
    void missingRequestIdIsGeneratedAs32HexCharacters() {
        open(answering(), MAX_BODY);

        write("GET /health HTTP/1.1\r\nHost: p\r\n\r\nGET /health HTTP/1.1\r\nHost: p\r\n\r\n");

        List<Resp> all = responses();
        assertEquals(2, all.size());
        String first = all.get(0).headers().get("x-request-id");
        String second = all.get(1).headers().get("x-request-id");
        assertNotNull(first);
        assertTrue(first.matches("[0-9a-f]{32}"), first);
        assertTrue(second.matches("[0-9a-f]{32}"), second);
        assertNotEquals(first, second);
        assertEquals(first, seen.get(0).requestId());
        assertFinishedCleanly();
    }

    @Test
    void unusableClientRequestIdIsReplaced() {
        open(answering(), MAX_BODY);

        write("GET /a HTTP/1.1\r\nHost: p\r\nX-Request-Id: has inner space\r\n\r\n"
                + "GET /b HTTP/1.1\r\nHost: p\r\nX-Request-Id: " + "x".repeat(129) + "\r\n\r\n");

        List<Resp> all = responses();
        assertEquals(2, all.size());
        for (Resp r : all) {
            assertTrue(r.headers().get("x-request-id").matches("[0-9a-f]{32}"), r.headers().get("x-request-id"));
        }
        assertFinishedCleanly();
    }

    @Test
    void errorResponsesCarryTheRequestIdToo() {
        open(exchange -> exchange.respondError(HttpResponseStatus.NOT_FOUND, ErrorResponses.NOT_FOUND,
                "not_found", "No such route."), MAX_BODY);

        write("GET /nope HTTP/1.1\r\nHost: p\r\nX-Request-Id: rid-9\r\n\r\n");

        Resp resp = onlyResponse();
        assertEquals(404, resp.status());
        assertEquals("rid-9", resp.headers().get("x-request-id"));
        assertFinishedCleanly();
    }

    // ---- (h) keep-alive ----

    @Test
    void keepAliveServesTwoRequestsInARow() {
        open(answering(), MAX_BODY);

        write("POST /v1/a HTTP/1.1\r\nHost: p\r\nContent-Length: 3\r\n\r\none");
        assertEquals(200, onlyResponse().status());
        assertTrue(channel.isOpen());

        write("POST /v1/b HTTP/1.1\r\nHost: p\r\nContent-Length: 3\r\n\r\ntwo");
        Resp second = onlyResponse();
        assertEquals(200, second.status());
        assertNull(second.headers().get("connection"));
        assertTrue(channel.isOpen());

        assertEquals(2, seen.size());
        assertEquals("/v1/a", seen.get(0).path());
        assertEquals("one", seen.get(0).body());
        assertEquals("/v1/b", seen.get(1).path());
        assertEquals("two", seen.get(1).body());
        assertFinishedCleanly();
    }

    @Test
    void pipelinedRequestsAreServedInOrder() {
        open(answering(), MAX_BODY);

        write("POST /v1/a HTTP/1.1\r\nHost: p\r\nContent-Length: 1\r\n\r\nA"
                + "POST /v1/b HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nB\r\n0\r\n\r\n"
                + "GET /v1/c HTTP/1.1\r\nHost: p\r\n\r\n");

        assertEquals(List.of("/v1/a", "/v1/b", "/v1/c"), seen.stream().map(Seen::path).toList());
        assertEquals(List.of("A", "B", ""), seen.stream().map(Seen::body).toList());
        List<Resp> all = responses();
        assertEquals(3, all.size());
        all.forEach(r -> assertEquals(200, r.status()));
        assertTrue(channel.isOpen());
        assertFinishedCleanly();
    }

    @Test
    void pipelinedRequestWaitsForTheAnswerInProgress() {
        AtomicReference<Exchange> held = new AtomicReference<>();
        open(exchange -> {
            record(exchange);
            if (held.get() == null && exchange.request().path().equals("/v1/slow")) {
                held.set(exchange);
            } else {
                exchange.respond(ErrorResponses.json(exchange.alloc(), HttpResponseStatus.OK, "{}"));
            }
        }, MAX_BODY);

        write("POST /v1/slow HTTP/1.1\r\nHost: p\r\nContent-Length: 4\r\n\r\nslow"
                + "POST /v1/next HTTP/1.1\r\nHost: p\r\nContent-Length: 4\r\n\r\nnext");

        assertEquals(1, seen.size(), "the second request waits for the first answer");
        assertEquals(1, lifecycle.inFlight());
        assertTrue(responses().isEmpty());

        held.get().respond(ErrorResponses.json(held.get().alloc(), HttpResponseStatus.OK, "{\"slow\":1}"));
        channel.runPendingTasks();

        assertEquals(2, seen.size());
        assertEquals("next", seen.get(1).body());
        List<Resp> all = responses();
        assertEquals(List.of("{\"slow\":1}", "{}"), all.stream().map(Resp::body).toList());
        assertFinishedCleanly();
    }

    @Test
    void connectionCloseClosesAfterTheAnswer() {
        open(answering(), MAX_BODY);

        write("GET /health HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n");

        Resp resp = onlyResponse();
        assertEquals(200, resp.status());
        assertEquals("close", resp.headers().get("connection"));
        assertFalse(channel.isOpen());
        assertEquals(1, seen.size());
        assertFinishedCleanly();
    }

    @Test
    void requestsAfterConnectionCloseAreNotServed() {
        open(answering(), MAX_BODY);

        write("GET /a HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n"
                + "POST /b HTTP/1.1\r\nHost: p\r\nContent-Length: 2\r\n\r\nhi");

        assertEquals(1, seen.size());
        assertEquals(1, responses().size());
        assertFalse(channel.isOpen());
        assertFinishedCleanly();
    }

    @Test
    void http10WithoutKeepAliveCloses() {
        open(answering(), MAX_BODY);

        write("GET /health HTTP/1.0\r\nHost: p\r\n\r\n");

        Resp resp = onlyResponse();
        assertEquals(200, resp.status());
        assertFalse(channel.isOpen());
        assertFinishedCleanly();
    }

    @Test
    void http10WithKeepAliveStaysOpen() {
        open(answering(), MAX_BODY);

        write("GET /health HTTP/1.0\r\nHost: p\r\nConnection: keep-alive\r\n\r\n");

        Resp resp = onlyResponse();
        assertEquals(200, resp.status());
        assertEquals("keep-alive", resp.headers().get("connection"));
        assertTrue(channel.isOpen());
        assertFinishedCleanly();
    }

    // ---- (i) client gone while the answer is pending ----

    @Test
    void clientGoneWhileAnswerPendingNotifiesListenerAndReleasesBody() {
        AtomicReference<Exchange> held = new AtomicReference<>();
        AtomicInteger gone = new AtomicInteger();
        AtomicInteger bodyRefCntWhenGone = new AtomicInteger(-1);
        open(exchange -> {
            record(exchange);
            held.set(exchange);
            exchange.listen(new ClientListener() {
                @Override
                public void onClientWritable() {
                }

                @Override
                public void onClientGone() {
                    gone.incrementAndGet();
                    bodyRefCntWhenGone.set(exchange.request().body().refCnt());
                }
            });
        }, MAX_BODY);

        write("POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "4\r\nbody\r\n5\r\n-held\r\n0\r\n\r\n");
        assertEquals(1, seen.size());
        assertEquals("body-held", seen.get(0).body());
        assertEquals(1, capturedBodies.get(0).refCnt());
        assertEquals(1, lifecycle.inFlight());

        channel.close();
        channel.runPendingTasks();

        assertEquals(1, gone.get(), "onClientGone exactly once");
        assertEquals(1, bodyRefCntWhenGone.get(), "the listener still sees the body");
        assertEquals(0, capturedBodies.get(0).refCnt(), "body released once the client is gone");
        assertTrue(held.get().finished());
        assertEquals(0, lifecycle.inFlight());

        // A late answer from whoever held the exchange is dropped and released.
        FullHttpResponse late = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK,
                Unpooled.copiedBuffer("late", StandardCharsets.UTF_8));
        held.get().respond(late);
        assertEquals(0, late.refCnt());
        assertTrue(responses().isEmpty());
        assertFinishedCleanly();
    }

    @Test
    void bodyIsReleasedOnceTheAnswersHeadIsCommittedNotAtTheStreamsEnd() {
        AtomicReference<Exchange> held = new AtomicReference<>();
        open(exchange -> {
            record(exchange);
            held.set(exchange);
        }, MAX_BODY);

        write("POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\nContent-Length: 5\r\n\r\nhello");
        assertEquals(1, capturedBodies.get(0).refCnt(), "held while an attempt may still send it");

        DefaultHttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
        head.headers().set("content-type", "text/event-stream");
        HttpUtil.setTransferEncodingChunked(head, true);
        held.get().sendHead(head);
        held.get().sendBody(Unpooled.copiedBuffer("data: 1\n\n", StandardCharsets.UTF_8), false);
        held.get().flush();
        channel.runPendingTasks();

        assertFalse(held.get().finished(), "the stream goes on");
        assertEquals(0, capturedBodies.get(0).refCnt(), "no retry can follow a committed head: the body goes");
        assertEquals(0, held.get().request().body().readableBytes());

        held.get().sendEnd(EmptyHttpHeaders.INSTANCE);
        Resp r = onlyResponse();
        assertEquals(200, r.status());
        assertEquals("data: 1\n\n", r.body());
        assertFinishedCleanly();
    }

    @Test
    void clientGoneWithoutListenerStillReleasesBody() {
        open(this::record, MAX_BODY);

        write("POST /v1/x HTTP/1.1\r\nHost: p\r\nContent-Length: 5\r\n\r\nhello");
        assertEquals(1, capturedBodies.get(0).refCnt());

        channel.close();
        channel.runPendingTasks();

        assertEquals(0, capturedBodies.get(0).refCnt());
        assertFinishedCleanly();
    }

    @Test
    void clientGoneMidBodyReleasesThePartialBodyWithoutRouting() {
        open(neverCalled(), MAX_BODY);
        ByteBuf wire = Unpooled.copiedBuffer("POST /v1/x HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "5\r\nhello\r\n", StandardCharsets.ISO_8859_1);
        mine.add(wire);

        channel.writeInbound(wire);
        channel.close();
        channel.runPendingTasks();

        assertEquals(0, wire.refCnt());
        assertFinishedCleanly();
    }

    // ---- router failures ----

    @Test
    void routerExceptionBecomes500AndTheConnectionStaysUsable() throws IOException {
        AtomicInteger calls = new AtomicInteger();
        open(exchange -> {
            record(exchange);
            if (calls.incrementAndGet() == 1) {
                throw new IllegalStateException("boom at /internal/path/Secret.java");
            }
            exchange.respond(ErrorResponses.json(exchange.alloc(), HttpResponseStatus.OK, "{}"));
        }, MAX_BODY);

        write("POST /v1/x HTTP/1.1\r\nHost: p\r\nContent-Length: 2\r\n\r\n{}");
        Resp resp = onlyResponse();
        assertEquals(500, resp.status());
        Map<String, String> error = errorBody(resp);
        assertEquals(ErrorResponses.SERVER, error.get("type"));
        assertFalse(resp.body().contains("boom"), "no internals leak into the answer");

        write("GET /v1/y HTTP/1.1\r\nHost: p\r\n\r\n");
        assertEquals(200, onlyResponse().status());
        assertFinishedCleanly();
    }

    // ---- body memory (issue 11, finding 1) ----

    @Test
    void aMillionOneByteChunksMakeOneBodyOfFewPiecesAndArriveIntact() {
        int n = 1_000_000;
        StringBuilder expected = new StringBuilder(n);
        for (int i = 0; i < n; i++) {
            expected.append((char) ('a' + i % 26));
        }
        AtomicInteger components = new AtomicInteger();
        open(structureChecking(expected.toString(), components), 2L * n);

        write("POST /v1/x HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n");
        StringBuilder wire = new StringBuilder();
        for (int i = 0; i < n; i++) {
            wire.append("1\r\n").append(expected.charAt(i)).append("\r\n");
            if (wire.length() >= 60_000) {
                write(wire.toString());
                wire.setLength(0);
            }
        }
        write(wire + "0\r\n\r\n");

        assertEquals(200, onlyResponse().status());
        assertTrue(components.get() <= RequestBody.MAX_COMPONENTS, "pieces: " + components.get());
        assertFinishedCleanly();
    }

    @Test
    void oneByteReadsOfAContentLengthBodyMakeOnePiece() {
        String expected = "x".repeat(5000);
        AtomicInteger components = new AtomicInteger();
        open(structureChecking(expected, components), MAX_BODY * 10);

        write("POST /v1/x HTTP/1.1\r\nHost: p\r\nContent-Length: 5000\r\n\r\n");
        for (int i = 0; i < expected.length(); i++) {
            write("x");
        }

        assertEquals(200, onlyResponse().status());
        assertEquals(1, components.get());
        assertFinishedCleanly();
    }

    @Test
    void aBodyInOneReadStaysTheReceivedSlice() {
        AtomicReference<Boolean> derived = new AtomicReference<>();
        open(exchange -> {
            derived.set(exchange.request().body().unwrap() != null);
            exchange.respond(ErrorResponses.json(exchange.alloc(), HttpResponseStatus.OK, "{}"));
        }, MAX_BODY);

        write("POST /v1/x HTTP/1.1\r\nHost: p\r\nContent-Length: 13\r\n\r\n{\"input\":\"x\"}");

        assertEquals(200, onlyResponse().status());
        assertTrue(derived.get(), "the body is a slice of the read buffer, not a copy");
        assertFinishedCleanly();
    }

    @Test
    void largePiecesAreKeptAndTheirCountStaysBounded() {
        int piece = RequestBody.COPY_BELOW * 2;
        int pieces = 40;
        StringBuilder expected = new StringBuilder();
        for (int i = 0; i < pieces; i++) {
            expected.append(String.valueOf((char) ('a' + i % 26)).repeat(piece));
            // a small chunk between the large ones, as a careless client might send
            expected.append('.');
        }
        AtomicInteger components = new AtomicInteger();
        open(structureChecking(expected.toString(), components), 4L * expected.length());

        write("POST /v1/x HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (int i = 0; i < pieces; i++) {
            write(Integer.toHexString(piece) + "\r\n" + String.valueOf((char) ('a' + i % 26)).repeat(piece) + "\r\n");
            write("1\r\n.\r\n");
        }
        write("0\r\n\r\n");

        assertEquals(200, onlyResponse().status());
        assertTrue(components.get() > 1, "large pieces are kept, not all copied");
        assertTrue(components.get() <= RequestBody.MAX_COMPONENTS, "pieces: " + components.get());
        assertFinishedCleanly();
    }

    // ---- head check (issue 11: the client key on the head) ----

    private static HeadCheck refusingWith401() {
        return exchange -> {
            exchange.respondError(HttpResponseStatus.UNAUTHORIZED, ErrorResponses.AUTHENTICATION, "invalid_api_key",
                    "A valid proxy API key is required.");
            return false;
        };
    }

    @Test
    void aRefusedHeadIsAnsweredBeforeItsBodyAndTheConnectionCloses() throws IOException {
        open(neverCalled(), MAX_BODY, refusingWith401());

        write("POST /v1/x HTTP/1.1\r\nHost: p\r\nContent-Length: 1000\r\n\r\n");

        Resp resp = onlyResponse();
        assertEquals(401, resp.status());
        assertEquals("invalid_api_key", errorBody(resp).get("code"));
        assertEquals("close", resp.headers().get("connection"));
        assertFalse(channel.isOpen(), "the unread body leaves the connection unusable");
        assertFinishedCleanly();
    }

    @Test
    void aRefusedHeadWithExpectContinueGetsNo100() {
        open(neverCalled(), MAX_BODY, refusingWith401());

        write("POST /v1/x HTTP/1.1\r\nHost: p\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n");

        assertEquals(401, onlyResponse().status());
        assertFinishedCleanly();
    }

    @Test
    void aRefusedHeadWithoutBodyKeepsTheConnection() {
        AtomicInteger checks = new AtomicInteger();
        open(answering(), MAX_BODY, exchange -> {
            if (checks.incrementAndGet() == 1) {
                return refusingWith401().admit(exchange);
            }
            return true;
        });

        write("GET /v1/models HTTP/1.1\r\nHost: p\r\n\r\nPOST /v1/x HTTP/1.1\r\nHost: p\r\nContent-Length: 2\r\n\r\n{}");

        List<Resp> all = responses();
        assertEquals(List.of(401, 200), all.stream().map(Resp::status).toList());
        assertEquals(List.of("{}"), seen.stream().map(Seen::body).toList());
        assertTrue(channel.isOpen());
        assertFinishedCleanly();
    }

    @Test
    void anAdmittedHeadIsRoutedWithItsBody() {
        open(answering(), MAX_BODY, exchange -> {
            assertEquals(0, exchange.request().body().readableBytes(), "no body byte before the check");
            return true;
        });

        write("POST /v1/x HTTP/1.1\r\nHost: p\r\nContent-Length: 5\r\n\r\nhello");

        assertEquals(200, onlyResponse().status());
        assertEquals("hello", seen.get(0).body());
        assertFinishedCleanly();
    }
}
