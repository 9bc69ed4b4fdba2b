package io.megallm.proxy.relay;

import io.megallm.proxy.http.InboundRequest;
import io.megallm.proxy.http.TestRequests;
import io.megallm.proxy.upstream.UpstreamTarget;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.DefaultHttpHeaders;
import io.netty.handler.codec.http.DefaultHttpRequest;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpRequestDecoder;
import io.netty.handler.codec.http.HttpVersion;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class HeaderRewriterTest {

    private static final UpstreamTarget MEGALLM = UpstreamTarget.parse("https://ai.megallm.io/v1");
    private static final InetSocketAddress LOCAL = new InetSocketAddress("127.0.0.1", 54321);
    private static final String BODY = "{\"model\":\"gpt-4o\",\"messages\":[]}";

    private final List<ByteBuf> bodies = new ArrayList<>();

    @AfterEach
    void releaseBodies() {
        bodies.forEach(b -> {
            if (b.refCnt() > 0) {
                b.release();
            }
        });
    }

    private InboundRequest request(HttpMethod method, String body, String requestId, InetSocketAddress remote,
                                   String... headerPairs) {
        HttpRequest head = new DefaultHttpRequest(HttpVersion.HTTP_1_1, method, "/v1/chat/completions");
        for (int i = 0; i < headerPairs.length; i += 2) {
            head.headers().add(headerPairs[i], headerPairs[i + 1]);
        }
        ByteBuf buf = Unpooled.copiedBuffer(body, StandardCharsets.UTF_8);
        bodies.add(buf);
        return TestRequests.inbound(head, buf, requestId, remote);
    }

    /**
     * The headers of the head {@link HeaderRewriter#upstreamHead} builds, as an HTTP server reads
     * them: the bytes, with an Authorization line and the blank line added as each attempt does,
     * go through Netty's request decoder.
     */
    private static HttpHeaders upstreamHeaders(InboundRequest request, UpstreamTarget target) {
        byte[] head = HeaderRewriter.upstreamHead(request, target, "/v1/chat/completions");
        EmbeddedChannel server = new EmbeddedChannel(new HttpRequestDecoder());
        try {
            server.writeInbound(Unpooled.wrappedBuffer(head,
                    "authorization: Bearer pool-key\r\n\r\n".getBytes(StandardCharsets.US_ASCII)));
            HttpRequest decoded = server.readInbound();
            assertTrue(decoded.decoderResult().isSuccess(), () -> new String(head, StandardCharsets.ISO_8859_1));
            assertEquals("/v1/chat/completions", decoded.uri());
            assertEquals(request.method(), decoded.method());
            HttpHeaders headers = decoded.headers();
            assertEquals(List.of("Bearer pool-key"), headers.getAll("authorization"));
            headers.remove("authorization");
            return headers;
        } finally {
            server.finishAndReleaseAll();
        }
    }

    private InboundRequest post(String... headerPairs) {
        return request(HttpMethod.POST, BODY, "req-1", LOCAL, headerPairs);
    }

    @Test
    void hostIsReplacedByTheTargetsHostHeader() {
        HttpHeaders out = upstreamHeaders(post("Host", "proxy.example:8000"), MEGALLM);
        assertEquals(List.of("ai.megallm.io"), out.getAll("host"));

        UpstreamTarget local = UpstreamTarget.parse("http://localhost:8080/v1");
        assertEquals(List.of("localhost:8080"),
                upstreamHeaders(post("Host", "proxy.example"), local).getAll("host"));
    }

    @Test
    void hostIsSetEvenWhenTheClientSentNone() {
        assertEquals("ai.megallm.io", upstreamHeaders(post(), MEGALLM).get("host"));
    }

    @Test
    void hopByHopHeadersAreNotForwarded() {
        HttpHeaders out = upstreamHeaders(post(
                "Connection", "keep-alive, Upgrade",
                "Keep-Alive", "timeout=5",
                "Proxy-Authorization", "Basic dXNlcjpwYXNz",
                "Proxy-Connection", "keep-alive",
                "TE", "trailers",
                "Trailer", "X-Checksum",
                "Upgrade", "h2c",
                "Content-Type", "application/json",
                "Accept", "text/event-stream",
                "User-Agent", "openai-python/1.0",
                "OpenAI-Organization", "org-1"), MEGALLM);

        for (String gone : List.of("connection", "keep-alive", "proxy-authorization", "proxy-connection",
                "te", "trailer", "upgrade")) {
            assertFalse(out.contains(gone), gone + " was forwarded");
        }
        assertEquals("application/json", out.get("content-type"));
        assertEquals("text/event-stream", out.get("accept"));
        assertEquals("openai-python/1.0", out.get("user-agent"));
        // Contract §6 (2026-12-05): the client's account headers stay behind too.
        assertFalse(out.contains("openai-organization"));
    }

    @Test
    void theUpstreamIsAskedForAnAnswerItCanRead() {
        // Contract §13 and §9: usage is read from the answer's bytes and a rejection is searched
        // for the key; a compressed body allows neither, whatever the client accepts.
        HttpHeaders out = upstreamHeaders(post("Accept-Encoding", "gzip, deflate, br", "accept-encoding", "zstd"), MEGALLM);
        assertEquals(List.of("identity"), out.getAll("accept-encoding"));
        assertEquals(List.of("identity"), upstreamHeaders(post(), MEGALLM).getAll("accept-encoding"));
    }

    @Test
    void clientCredentialsAndAccountHeadersAreDroppedWhateverTheirCase() {
        HttpHeaders out = upstreamHeaders(post(
                "X-API-KEY", "client", "Api-Key", "azure", "openai-organization", "org-1",
                "OpenAI-Project", "proj-1", "X-Api-Keys", "kept-similar-name", "OpenAI-Beta", "assistants=v2"), MEGALLM);
        for (String gone : List.of("x-api-key", "api-key", "openai-organization", "openai-project")) {
            assertFalse(out.contains(gone), gone + " was forwarded");
        }
        assertEquals("kept-similar-name", out.get("x-api-keys"));
        assertEquals("assistants=v2", out.get("openai-beta"));
    }

    @Test
    void droppedNamesAreMatchedWhateverTheirCaseAndNamesOfTheSameLengthPass() {
        HttpHeaders out = upstreamHeaders(post(
                "CONNECTION", "close", "kEEP-aLIVE", "x", "tE", "x", "TRAILER", "x", "UpGrade", "x",
                "PROXY-X", "x", "EXPECT", "100-continue", "HOST", "h", "AUTHORIZATION", "Bearer c",
                "X-FORWARDED-FOR", "1.2.3.4", "X-REQUEST-ID", "given",
                // The reader refuses Content-Length with Transfer-Encoding; Content-Length alone is below.
                "TRANSFER-ENCODING", "chunked",
                // Same lengths as dropped names, other letters: forwarded.
                "tx", "1", "hose", "2", "expert", "3", "trailed", "4", "connectio_", "5", "x-request-ix", "6",
                "authorizatio_", "7", "content-lengtx", "8", "x-forwarded-fox", "9", "transfer-encodin_", "10",
                "proxy", "11"), MEGALLM);

        assertEquals(List.of("ai.megallm.io"), out.getAll("host"));
        assertEquals(List.of("req-1"), out.getAll("x-request-id"));
        assertEquals(List.of("1.2.3.4, 127.0.0.1"), out.getAll("x-forwarded-for"));
        assertEquals(List.of(String.valueOf(BODY.length())), out.getAll("content-length"));
        for (String gone : List.of("connection", "keep-alive", "te", "trailer", "upgrade", "proxy-x", "expect",
                "transfer-encoding")) {
            assertFalse(out.contains(gone), gone + " was forwarded");
        }
        String[] kept = {"tx", "hose", "expert", "trailed", "connectio_", "x-request-ix", "authorizatio_",
                "content-lengtx", "x-forwarded-fox", "transfer-encodin_", "proxy"};
        for (int i = 0; i < kept.length; i++) {
            assertEquals(String.valueOf(i + 1), out.get(kept[i]), kept[i] + " was not forwarded");
        }
    }

    @Test
    void headersNamedInConnectionAreNotForwarded() {
        HttpHeaders out = upstreamHeaders(post(
                "Connection", "close, X-Hop-One",
                "connection", "x-hop-two ,keep-alive",
                "X-Hop-One", "1",
                "X-HOP-TWO", "2",
                "X-Kept", "3"), MEGALLM);

        assertFalse(out.contains("x-hop-one"));
        assertFalse(out.contains("x-hop-two"));
        assertFalse(out.contains("connection"));
        assertEquals("3", out.get("x-kept"));
    }

    @Test
    void clientAuthorizationIsNotForwarded() {
        HttpHeaders out = upstreamHeaders(post("Authorization", "Bearer client-access-key"), MEGALLM);

        assertFalse(out.contains("authorization"), "the pool key is added per attempt, never the client's");
    }

    @Test
    void requestIdIsTheExchangesOneExactlyOnce() {
        HttpHeaders fromClient = upstreamHeaders(
                request(HttpMethod.POST, BODY, "client-id-7", LOCAL, "X-Request-Id", "client-id-7"), MEGALLM);
        assertEquals(List.of("client-id-7"), fromClient.getAll("x-request-id"));

        HttpHeaders generated = upstreamHeaders(
                request(HttpMethod.POST, BODY, "0123456789abcdef0123456789abcdef", LOCAL), MEGALLM);
        assertEquals(List.of("0123456789abcdef0123456789abcdef"), generated.getAll("x-request-id"));

        HttpHeaders replaced = upstreamHeaders(
                request(HttpMethod.POST, BODY, "generated-id", LOCAL, "x-request-id", "bad id with spaces"), MEGALLM);
        assertEquals(List.of("generated-id"), replaced.getAll("x-request-id"));
    }

    @Test
    void forwardedForGetsTheClientAddress() {
        HttpHeaders out = upstreamHeaders(post(), MEGALLM);

        assertEquals(List.of("127.0.0.1"), out.getAll("x-forwarded-for"));
    }

    @Test
    void forwardedForIsAppendedToWhatTheClientSent() {
        HttpHeaders out = upstreamHeaders(post("X-Forwarded-For", "1.2.3.4"), MEGALLM);

        assertEquals(List.of("1.2.3.4, 127.0.0.1"), out.getAll("x-forwarded-for"));

        HttpHeaders chain = upstreamHeaders(post("X-Forwarded-For", "1.2.3.4, 5.6.7.8"), MEGALLM);
        assertEquals(List.of("1.2.3.4, 5.6.7.8, 127.0.0.1"), chain.getAll("x-forwarded-for"));
    }

    @Test
    void blankForwardedForIsReplaced() {
        HttpHeaders out = upstreamHeaders(post("X-Forwarded-For", ""), MEGALLM);

        assertEquals(List.of("127.0.0.1"), out.getAll("x-forwarded-for"));
    }

    @Test
    void forwardedForKeepsEveryHopWhenSentOnSeveralLines() {
        HttpHeaders out = upstreamHeaders(
                post("X-Forwarded-For", "1.2.3.4", "X-Forwarded-For", "5.6.7.8"), MEGALLM);

        assertEquals(List.of("1.2.3.4, 5.6.7.8, 127.0.0.1"), out.getAll("x-forwarded-for"));
    }

    @Test
    void ipv6ClientAddress() {
        InetSocketAddress v6 = new InetSocketAddress("::1", 40000);
        HttpHeaders out = upstreamHeaders(request(HttpMethod.POST, BODY, "r", v6), MEGALLM);

        String xff = out.get("x-forwarded-for");
        assertTrue(xff.equals("0:0:0:0:0:0:0:1") || xff.equals("::1"), xff);
    }

    @Test
    void contentLengthIsTheBodyLengthAndTransferEncodingIsDropped() {
        HttpHeaders out = upstreamHeaders(post(
                "Transfer-Encoding", "chunked",
                "Expect", "100-continue"), MEGALLM);

        assertEquals(List.of(String.valueOf(BODY.getBytes(StandardCharsets.UTF_8).length)),
                out.getAll("content-length"));
        assertFalse(out.contains("transfer-encoding"));
        assertFalse(out.contains("expect"));
    }

    @Test
    void wrongClientContentLengthIsReplaced() {
        HttpHeaders out = upstreamHeaders(post("Content-Length", "999"), MEGALLM);

        assertEquals(List.of(String.valueOf(BODY.length())), out.getAll("content-length"));
    }

    @Test
    void multiByteBodyLengthCountsBytes() {
        String body = "{\"content\":\"h\u00e9llo \u2603\"}";
        HttpHeaders out = upstreamHeaders(request(HttpMethod.POST, body, "r", LOCAL), MEGALLM);

        assertEquals(body.getBytes(StandardCharsets.UTF_8).length, out.getInt("content-length"));
    }

    @Test
    void emptyPostSaysZeroAndEmptyGetSaysNothing() {
        assertEquals("0", upstreamHeaders(request(HttpMethod.POST, "", "r", LOCAL), MEGALLM)
                .get("content-length"));
        assertNull(upstreamHeaders(request(HttpMethod.GET, "", "r", LOCAL), MEGALLM)
                .get("content-length"));
    }

    @Test
    void otherHeadersKeepAllTheirValuesInOrder() {
        HttpHeaders out = upstreamHeaders(post(
                "X-Multi", "one", "X-Multi", "two", "Cookie", "a=1"), MEGALLM);

        assertEquals(List.of("one", "two"), out.getAll("x-multi"));
        assertEquals("a=1", out.get("cookie"));
    }

    @Test
    void theClientsRequestHeadersAreLeftUntouched() {
        InboundRequest req = post("Connection", "keep-alive", "Authorization", "Bearer x", "Host", "h");

        upstreamHeaders(req, MEGALLM);

        assertEquals("keep-alive", req.headers().get("connection"));
        assertEquals("Bearer x", req.headers().get("authorization"));
        assertEquals("h", req.headers().get("host"));
    }

    @Test
    void stripResponseRemovesHopByHopAndConnectionNamedHeaders() {
        HttpHeaders h = new DefaultHttpHeaders()
                .add("Connection", "keep-alive, X-Upstream-Hop")
                .add("Keep-Alive", "timeout=5, max=100")
                .add("TE", "trailers")
                .add("Trailer", "X-Checksum")
                .add("Upgrade", "h2")
                .add("Proxy-Authenticate", "Basic")
                .add("Proxy-Authorization", "Basic abc")
                .add("Proxy-Foo", "bar")
                .add("X-Upstream-Hop", "1")
                .add("Content-Type", "text/event-stream")
                .add("Transfer-Encoding", "chunked")
                .add("Set-Cookie", "a=1")
                .add("Set-Cookie", "b=2")
                .add("Retry-After", "30")
                .add("X-Request-Id", "abc")
                .add("openai-processing-ms", "12");

        HeaderRewriter.stripResponse(h);

        for (String gone : List.of("connection", "keep-alive", "te", "trailer", "upgrade", "proxy-authenticate",
                "proxy-authorization", "proxy-foo", "x-upstream-hop")) {
            assertFalse(h.contains(gone), gone + " was relayed");
        }
        assertEquals("text/event-stream", h.get("content-type"));
        assertEquals("chunked", h.get("transfer-encoding"));
        assertEquals(List.of("a=1", "b=2"), h.getAll("set-cookie"));
        assertEquals("30", h.get("retry-after"));
        assertEquals("abc", h.get("x-request-id"));
        assertEquals("12", h.get("openai-processing-ms"));
        assertEquals(6, h.names().size(), h.names().toString());
    }

    @Test
    void stripResponseWithNothingToStripChangesNothing() {
        HttpHeaders h = new DefaultHttpHeaders()
                .add("Content-Type", "application/json")
                .add("Content-Length", "2");

        HeaderRewriter.stripResponse(h);

        assertEquals("application/json", h.get("content-type"));
        assertEquals("2", h.get("content-length"));
        assertEquals(2, h.size());
    }
}
