package io.megallm.proxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.util.AsciiString;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link RequestHeadParser} read directly over buffers, with what it makes: {@link RequestHead}, {@link RequestHeaders}. */
class RequestHeadParserTest {

    private static final String SDK_BODY = "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}";

    /** The head the OpenAI Python SDK sends for a chat completion, names in the case it writes them. */
    private static final String SDK_HEAD = "POST /v1/chat/completions HTTP/1.1\r\n"
            + "Host: api.megallm.io\r\n"
            + "Accept-Encoding: gzip, deflate\r\n"
            + "Connection: keep-alive\r\n"
            + "Accept: application/json\r\n"
            + "Content-Type: application/json\r\n"
            + "User-Agent: OpenAI/Python 1.54.3\r\n"
            + "X-Stainless-Lang: python\r\n"
            + "X-Stainless-Package-Version: 1.54.3\r\n"
            + "X-Stainless-Retry-Count: 0\r\n"
            + "Authorization: Bearer sk-test-0123456789\r\n"
            + "Content-Length: " + SDK_BODY.length() + "\r\n"
            + "\r\n";

    private static final String NEXT_REQUEST = "GET /v1/models HTTP/1.1\r\nHost: api.megallm.io\r\n\r\n";

    private final List<ByteBuf> mine = new ArrayList<>();

    @AfterEach
    void releaseAndCheck() {
        List<String> leaked = new ArrayList<>();
        for (ByteBuf b : mine) {
            if (b.refCnt() > 0) {
                b.release();
            }
            if (b.refCnt() != 0) {
                leaked.add(b.toString());
                b.release(b.refCnt());
            }
        }
        assertTrue(leaked.isEmpty(), "buffers still referenced: " + leaked);
    }

    // ---- harness ----

    /** A buffer holding {@code raw}, one byte per char (ISO-8859-1), released after the test. */
    private ByteBuf buf(String raw) {
        ByteBuf b = Unpooled.copiedBuffer(raw, StandardCharsets.ISO_8859_1);
        mine.add(b);
        return b;
    }

    private ByteBuf empty(int capacity) {
        ByteBuf b = Unpooled.buffer(capacity);
        mine.add(b);
        return b;
    }

    private static byte[] bytes(String raw) {
        return raw.getBytes(StandardCharsets.ISO_8859_1);
    }

    /** Parses a head that must be complete and valid in {@code raw}. */
    private RequestHead parse(String raw) throws BadRequest {
        RequestHead head = new RequestHeadParser().parse(buf(raw));
        assertNotNull(head, "incomplete: " + raw);
        return head;
    }

    private BadRequest refused(String raw) {
        return assertThrows(BadRequest.class, () -> new RequestHeadParser().parse(buf(raw)), raw);
    }

    private void assertRefused(String raw, HttpResponseStatus status, String code) {
        BadRequest e = refused(raw);
        assertEquals(status, e.status, raw);
        assertEquals(code, e.code, raw);
        assertNotNull(e.getMessage(), raw);
        assertFalse(e.getMessage().isBlank(), raw);
    }

    private void assertMalformed(String raw) {
        assertRefused(raw, HttpResponseStatus.BAD_REQUEST, "malformed_http");
    }

    /** Everything a head says, as text, to compare two parses. */
    private static String describe(RequestHead h) {
        StringBuilder b = new StringBuilder();
        b.append(h.method()).append(' ').append(h.uri()).append(' ').append(h.version())
                .append(" keepAlive=").append(h.keepAlive())
                .append(" contentLength=").append(h.contentLength())
                .append(" chunked=").append(h.chunked())
                .append(" expectContinue=").append(h.expectContinue()).append('\n');
        RequestHeaders headers = h.headers();
        for (int i = 0; i < headers.size(); i++) {
            b.append('[').append(headers.name(i)).append("]=[").append(headers.value(i)).append("]\n");
        }
        return b.toString();
    }

    private static String head(String version, String... fields) {
        StringBuilder b = new StringBuilder("GET /x ").append(version).append("\r\n");
        for (String f : fields) {
            b.append(f).append("\r\n");
        }
        return b.append("\r\n").toString();
    }

    // ---- a typical head ----

    @Test
    void aTypicalSdkHeadIsReadWithEveryFieldAndLeavesTheBodyAndTheNextRequest() throws BadRequest {
        ByteBuf in = buf(SDK_HEAD + SDK_BODY + NEXT_REQUEST);
        RequestHead head = new RequestHeadParser().parse(in);

        assertNotNull(head);
        assertSame(HttpMethod.POST, head.method());
        assertEquals("/v1/chat/completions", head.uri());
        assertSame(HttpVersion.HTTP_1_1, head.version());
        assertTrue(head.keepAlive());
        assertEquals(SDK_BODY.length(), head.contentLength());
        assertFalse(head.chunked());
        assertFalse(head.expectContinue());

        assertEquals(SDK_HEAD.length(), in.readerIndex(), "the reader index is just past the blank line");
        assertEquals(SDK_BODY + NEXT_REQUEST, in.toString(StandardCharsets.ISO_8859_1));

        RequestHeaders h = head.headers();
        assertEquals(11, h.size());
        assertEquals("api.megallm.io", h.get("host"));
        assertEquals("api.megallm.io", h.get("HOST"));
        assertEquals("api.megallm.io", h.get("Host"));
        assertEquals("gzip, deflate", h.get("accept-encoding"));
        assertEquals("keep-alive", h.get("CONNECTION"));
        assertEquals("application/json", h.get("Accept"));
        assertEquals("application/json", h.get("content-type"));
        assertEquals("OpenAI/Python 1.54.3", h.get("user-agent"));
        assertEquals("python", h.get("x-stainless-lang"));
        assertEquals("1.54.3", h.get("X-STAINLESS-PACKAGE-VERSION"));
        assertEquals("0", h.get("x-stainless-retry-count"));
        assertEquals("Bearer sk-test-0123456789", h.get("authorization"));
        assertEquals(String.valueOf(SDK_BODY.length()), h.get("Content-Length"));
        assertNull(h.get("x-missing"));
        assertNull(h.get("hos"), "a prefix of a name is not the name");
        assertNull(h.get("hostt"));
        assertTrue(h.contains("AUTHORIZATION"));
        assertFalse(h.contains("cookie"));
        assertEquals(List.of("python"), h.getAll("X-Stainless-Lang"));
        assertEquals(List.of(), h.getAll("x-missing"));

        List<String> names = new ArrayList<>();
        for (int i = 0; i < h.size(); i++) {
            assertFalse(h.removed(i));
            names.add(h.name(i));
        }
        assertEquals(List.of("Host", "Accept-Encoding", "Connection", "Accept", "Content-Type", "User-Agent",
                "X-Stainless-Lang", "X-Stainless-Package-Version", "X-Stainless-Retry-Count", "Authorization",
                "Content-Length"), names, "names keep the case they arrived in, in order");
        assertEquals(9, h.indexOf("authorization", 0));
        assertEquals(9, h.indexOf("authorization", 9));
        assertEquals(-1, h.indexOf("authorization", 10));
        assertTrue(h.nameIs(0, "HOST"));
        assertFalse(h.nameIs(0, "Accept"));
    }

    @Test
    void pipelinedHeadsAreReadOneAfterTheOtherByTheSameParser() throws BadRequest {
        String first = "GET /a HTTP/1.1\r\nHost: one\r\n\r\n";
        ByteBuf in = buf(first + NEXT_REQUEST + "DELETE /c HTTP/1.1\r\n");
        RequestHeadParser parser = new RequestHeadParser();

        RequestHead a = parser.parse(in);
        assertEquals("/a", a.uri());
        assertEquals("one", a.headers().get("host"));
        assertEquals(first.length(), in.readerIndex());

        RequestHead b = parser.parse(in);
        assertEquals("/v1/models", b.uri());
        assertEquals(first.length() + NEXT_REQUEST.length(), in.readerIndex());

        assertNull(parser.parse(in), "the third head is not complete");
        assertEquals("DELETE /c HTTP/1.1\r\n", in.toString(StandardCharsets.ISO_8859_1), "nothing of it was read");
    }

    @Test
    void repeatedNamesComeInOrderAndValuesAreTrimmedOfSpacesAndTabs() throws BadRequest {
        RequestHead head = parse(head("HTTP/1.1",
                "X-Tag:  one \t",
                "Other:\tv",
                "x-tag:\ttwo",
                "X-TAG:three",
                "X-Inner: a  b\tc",
                "X-Empty:",
                "X-Blank: \t \t"));
        RequestHeaders h = head.headers();
        assertEquals(List.of("one", "two", "three"), h.getAll("x-tag"));
        assertEquals(List.of("one", "two", "three"), h.getAll("X-TAG"));
        assertEquals("one", h.get("X-Tag"), "get gives the first");
        assertEquals("v", h.get("other"));
        assertEquals("a  b\tc", h.get("x-inner"), "blanks inside a value stay");
        assertEquals("", h.get("x-empty"));
        assertTrue(h.contains("x-empty"));
        assertEquals("", h.get("x-blank"));
        assertEquals("x-tag", h.name(2));
        assertEquals("X-TAG", h.name(3));
    }

    @Test
    void manyFieldsAreAllKeptInOrder() throws BadRequest {
        List<String> fields = new ArrayList<>();
        List<String> values = new ArrayList<>();
        for (int i = 0; i < 100; i++) {
            fields.add((i % 2 == 0 ? "X-Many: " : "x-many: ") + "v" + i);
            values.add("v" + i);
        }
        fields.add("Last: end");
        RequestHeaders h = parse(head("HTTP/1.1", fields.toArray(new String[0]))).headers();
        assertEquals(101, h.size());
        assertEquals(values, h.getAll("X-MANY"));
        assertEquals("end", h.get("last"));
        assertEquals(100, h.indexOf("last", 0));
    }

    @Test
    void aHeadWithoutFieldsIsRead() throws BadRequest {
        ByteBuf in = buf("GET / HTTP/1.1\r\n\r\nrest");
        RequestHead head = new RequestHeadParser().parse(in);
        assertEquals("/", head.uri());
        assertEquals(0, head.headers().size());
        assertNull(head.headers().get("host"));
        assertEquals(List.of(), head.headers().getAll("host"));
        assertEquals(-1, head.contentLength());
        assertEquals("rest", in.toString(StandardCharsets.ISO_8859_1));
    }

    @Test
    void methodsAndTargetsAreReadAsSent() throws BadRequest {
        assertSame(HttpMethod.GET, parse("GET / HTTP/1.1\r\n\r\n").method());
        assertSame(HttpMethod.PUT, parse("PUT / HTTP/1.1\r\n\r\n").method());
        assertSame(HttpMethod.HEAD, parse("HEAD / HTTP/1.1\r\n\r\n").method());
        assertEquals(HttpMethod.DELETE, parse("DELETE / HTTP/1.1\r\n\r\n").method());
        assertEquals(HttpMethod.PATCH, parse("PATCH / HTTP/1.1\r\n\r\n").method());
        assertEquals(HttpMethod.OPTIONS, parse("OPTIONS * HTTP/1.1\r\n\r\n").method());
        assertEquals("*", parse("OPTIONS * HTTP/1.1\r\n\r\n").uri());
        assertEquals("get", parse("get / HTTP/1.1\r\n\r\n").method().name(), "methods are case-sensitive");
        assertEquals("PROPFIND", parse("PROPFIND /dav HTTP/1.1\r\n\r\n").method().name());
        // No request target has a fragment (RFC 9112 §3.2); a server behind us may end the path there.
        refused("GET /v1/files?purpose=batch&limit=10#f HTTP/1.1\r\n\r\n");
        refused("GET /v1/..# HTTP/1.1\r\n\r\n");
        // The absolute form is read as its origin form (RFC 9112 §3.2.2: a server must accept it).
        assertEquals("/p", parse("GET http://example.com:80/p HTTP/1.1\r\n\r\n").uri());
        assertEquals("/v1/models?x=1", parse("GET HTTPS://user@example.com/v1/models?x=1 HTTP/1.1\r\n\r\n").uri());
        assertEquals("/?q", parse("GET http://example.com?q HTTP/1.1\r\n\r\n").uri());
        assertEquals("/", parse("GET http://example.com HTTP/1.1\r\n\r\n").uri());
        assertEquals("ftp://x/p", parse("GET ftp://x/p HTTP/1.1\r\n\r\n").uri(), "another scheme is left alone (404)");
        assertEquals("/caf\u00e9", parse("GET /caf\u00e9 HTTP/1.1\r\n\r\n").uri(), "a byte above 0x7f is one char");
    }

    // ---- line ends ----

    @Test
    void bareLfLineEndsAreAccepted() throws BadRequest {
        String raw = "POST /v1/embeddings HTTP/1.1\nHost: h\nContent-Length: 2\nX-A:  a \n\n";
        ByteBuf in = buf(raw + "{}");
        RequestHead head = new RequestHeadParser().parse(in);
        assertSame(HttpMethod.POST, head.method());
        assertEquals("/v1/embeddings", head.uri());
        assertSame(HttpVersion.HTTP_1_1, head.version());
        assertEquals("h", head.headers().get("host"));
        assertEquals("a", head.headers().get("x-a"));
        assertEquals(2, head.contentLength());
        assertEquals(raw.length(), in.readerIndex());
        assertEquals("{}", in.toString(StandardCharsets.ISO_8859_1));
    }

    @Test
    void mixedLineEndsAreAccepted() throws BadRequest {
        for (String raw : new String[] {
                "GET /m HTTP/1.1\r\nHost: h\nX-A: a\r\n\n",
                "GET /m HTTP/1.1\nHost: h\r\nX-A: a\n\r\n",
                "GET /m HTTP/1.1\nHost: h\nX-A: a\r\n\r\n"}) {
            ByteBuf in = buf(raw + "B");
            RequestHead head = new RequestHeadParser().parse(in);
            assertNotNull(head, raw);
            assertEquals("/m", head.uri(), raw);
            assertEquals("h", head.headers().get("host"), raw);
            assertEquals("a", head.headers().get("x-a"), raw);
            assertEquals(raw.length(), in.readerIndex(), raw);
        }
    }

    @Test
    void emptyLinesBeforeTheRequestLineAreSkipped() throws BadRequest {
        String raw = "\r\n\n\r\nGET /after-blank HTTP/1.1\r\nHost: h\r\n\r\n";
        ByteBuf in = buf(raw + "x");
        RequestHead head = new RequestHeadParser().parse(in);
        assertEquals("/after-blank", head.uri());
        assertEquals("h", head.headers().get("host"));
        assertEquals(raw.length(), in.readerIndex());
    }

    @Test
    void onlyEmptyLinesAreNotYetAHead() throws BadRequest {
        RequestHeadParser parser = new RequestHeadParser();
        ByteBuf in = empty(64);
        in.writeBytes(bytes("\r\n\r\n"));
        assertNull(parser.parse(in));
        in.writeBytes(bytes("\nGET /late HTTP/1.1\r\n\r\n"));
        assertEquals("/late", parser.parse(in).uri());
        assertFalse(in.isReadable());
    }

    // ---- heads that arrive in pieces ----

    private static final String[] HEADS = {
            SDK_HEAD,
            "GET /v1/models HTTP/1.1\r\n\r\n",
            "GET /lf HTTP/1.0\nHost: h\nConnection: keep-alive\n\n",
            "\r\n\r\nPOST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
            "PUT /mixed HTTP/1.1\nA: 1\r\nB: \t2 \n\r\n",
            "GET /v HTTP/1.1\r\nX-A:\t ab \r\nx-a: cd\r\nHost: h\r\n\r\n",
    };

    @Test
    void aHeadFedOneByteAtATimeIsNullUntilItsLastByteThenTheSameAsWhole() throws BadRequest {
        for (String raw : HEADS) {
            String whole = describe(parse(raw));
            byte[] b = bytes(raw);
            RequestHeadParser parser = new RequestHeadParser();
            ByteBuf in = empty(b.length + NEXT_REQUEST.length());
            for (int i = 0; i < b.length - 1; i++) {
                in.writeByte(b[i]);
                assertNull(parser.parse(in), "after byte " + i + " of " + raw);
            }
            in.writeByte(b[b.length - 1]);
            RequestHead head = parser.parse(in);
            assertNotNull(head, raw);
            assertEquals(whole, describe(head), raw);
            assertFalse(in.isReadable(), raw);

            // The same parser goes on with the next head once this one is read.
            in.writeBytes(bytes(NEXT_REQUEST));
            assertEquals("/v1/models", parser.parse(in).uri(), raw);
        }
    }

    @Test
    void aHeadSplitAtEveryPositionIntoTwoWritesGivesTheSameResult() throws BadRequest {
        for (String raw : HEADS) {
            String whole = describe(parse(raw));
            byte[] b = bytes(raw);
            byte[] body = bytes("BODY");
            for (int k = 1; k < b.length; k++) {
                RequestHeadParser parser = new RequestHeadParser();
                ByteBuf in = empty(b.length + body.length);
                in.writeBytes(b, 0, k);
                assertNull(parser.parse(in), "split at " + k + " of " + raw);
                in.writeBytes(b, k, b.length - k);
                in.writeBytes(body);
                RequestHead head = parser.parse(in);
                assertNotNull(head, "split at " + k + " of " + raw);
                assertEquals(whole, describe(head), "split at " + k + " of " + raw);
                assertEquals("BODY", in.toString(StandardCharsets.ISO_8859_1), "split at " + k + " of " + raw);
            }
        }
    }

    @Test
    void aHeadSplitIntoThreeWritesGivesTheSameResult() throws BadRequest {
        String whole = describe(parse(SDK_HEAD));
        byte[] b = bytes(SDK_HEAD);
        for (int i = 1; i < b.length; i += 7) {
            for (int j = i; j < b.length; j += 3) {
                RequestHeadParser parser = new RequestHeadParser();
                ByteBuf in = empty(b.length);
                in.writeBytes(b, 0, i);
                assertNull(parser.parse(in));
                in.writeBytes(b, i, j - i);
                assertNull(parser.parse(in));
                in.writeBytes(b, j, b.length - j);
                RequestHead head = parser.parse(in);
                assertNotNull(head, "split at " + i + ", " + j);
                assertEquals(whole, describe(head), "split at " + i + ", " + j);
            }
        }
    }

    // ---- refusals ----

    @Test
    void obsoleteLineFoldingIsRefused() {
        assertMalformed("GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n");
        assertMalformed("GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n");
        assertMalformed("GET / HTTP/1.1\r\n Host: h\r\n\r\n");
        assertMalformed("GET / HTTP/1.1\n\tHost: h\n\n");
    }

    @Test
    void badFieldNamesAreRefused() {
        assertMalformed("GET / HTTP/1.1\r\nHost : h\r\n\r\n");
        assertMalformed("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n");
        assertMalformed("GET / HTTP/1.1\r\n: h\r\n\r\n");
        assertMalformed("GET / HTTP/1.1\r\nNo-Colon\r\n\r\n");
        assertMalformed("GET / HTTP/1.1\r\nX(a): h\r\n\r\n");
        assertMalformed("GET / HTTP/1.1\r\nX\u0000A: h\r\n\r\n");
        assertMalformed("GET / HTTP/1.1\r\nCaf\u00e9: h\r\n\r\n");
        assertMalformed("GET / HTTP/1.1\r\nHost: h\r\n\rX: y\r\n\r\n");
    }

    @Test
    void controlBytesInAValueAreRefused() {
        assertMalformed("GET / HTTP/1.1\r\nX-A: a\u0000b\r\n\r\n");
        assertMalformed("GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n");
        assertMalformed("GET / HTTP/1.1\r\nX-A: a\r\r\n\r\n");
        assertMalformed("GET / HTTP/1.1\r\nX-A: a\u007fb\r\n\r\n");
        assertMalformed("GET / HTTP/1.1\r\nX-A: a\u001bb\r\n\r\n");
        assertMalformed("GET / HTTP/1.1\r\nX-A: \u0001\r\n\r\n");
    }

    @Test
    void badRequestLinesAreRefused() {
        assertMalformed("GET /\r\n\r\n");
        assertMalformed("GET / \r\n\r\n");
        assertMalformed("GET\r\n\r\n");
        assertMalformed("GET \r\n\r\n");
        assertMalformed("GET  HTTP/1.1\r\n\r\n");
        assertMalformed("THIS IS NOT-HTTP\r\n\r\n");
        assertMalformed("GET / HTTP/1.1 extra\r\n\r\n");
        assertMalformed("GET / HTTP/1.1 \r\n\r\n");
        assertMalformed("GET / http/1.1\r\n\r\n");
        assertMalformed("GET / HTTP/1\r\n\r\n");
        assertMalformed("GET / HTTP/1.10\r\n\r\n");
        assertMalformed("GET / HTTP/a.1\r\n\r\n");
        assertMalformed("GET\t/ HTTP/1.1\r\n\r\n");
        assertMalformed("G(T / HTTP/1.1\r\n\r\n");
        assertMalformed("GET /a\u0000b HTTP/1.1\r\n\r\n");
        assertMalformed("GET /a\u007fb HTTP/1.1\r\n\r\n");
        assertMalformed("GET /a\tb HTTP/1.1\r\n\r\n");
        assertMalformed("GET / HTTP/1.1\r\r\n\r\n");
    }

    @Test
    void otherMajorVersionsAreNotSupported() {
        assertRefused("GET / HTTP/2.0\r\n\r\n", HttpResponseStatus.HTTP_VERSION_NOT_SUPPORTED,
                "http_version_not_supported");
        assertRefused("GET / HTTP/3.0\r\nHost: h\r\n\r\n", HttpResponseStatus.HTTP_VERSION_NOT_SUPPORTED,
                "http_version_not_supported");
        assertRefused("GET / HTTP/0.9\r\n\r\n", HttpResponseStatus.HTTP_VERSION_NOT_SUPPORTED,
                "http_version_not_supported");
    }

    @Test
    void aHigherMinorVersionIsReadAsHttp11() throws BadRequest {
        RequestHead head = parse("GET / HTTP/1.2\r\nHost: h\r\n\r\n");
        assertSame(HttpVersion.HTTP_1_1, head.version());
        assertTrue(head.keepAlive());
        assertSame(HttpVersion.HTTP_1_1, parse("GET / HTTP/1.9\r\n\r\n").version());
        assertSame(HttpVersion.HTTP_1_0, parse("GET / HTTP/1.0\r\n\r\n").version());
    }

    @Test
    void aFirstByteThatCannotStartAMethodIsRefusedAtOnce() {
        // A TLS ClientHello on the plain port: no line end will ever come.
        assertMalformed("\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u00fc\u0003\u0003");
        assertMalformed("\u0016");
        assertMalformed("\r\n\u0016\u0003\u0001");
        assertMalformed(" GET / HTTP/1.1");
        assertMalformed("\u0000");
        assertMalformed("{\"model\":");
    }

    @Test
    void contentLengthMustBeOneNumber() throws BadRequest {
        assertRefused(head("HTTP/1.1", "Content-Length: 5", "Content-Length: 5"),
                HttpResponseStatus.BAD_REQUEST, "bad_request");
        assertRefused(head("HTTP/1.1", "Content-Length: 5", "content-length: 6"),
                HttpResponseStatus.BAD_REQUEST, "bad_request");
        for (String bad : new String[] {"abc", "", "  ", "-1", "+1", "1 2", "5, 5", "0x10", "1.0", "\u00b9"}) {
            assertRefused(head("HTTP/1.1", "Content-Length: " + bad), HttpResponseStatus.BAD_REQUEST, "bad_request");
        }
        assertEquals(0, parse(head("HTTP/1.1", "Content-Length: 0")).contentLength());
        assertEquals(123, parse(head("HTTP/1.1", "content-length:000123 \t")).contentLength());
        assertEquals(-1, parse(head("HTTP/1.1", "Content-Lengthx: 5")).contentLength());
        assertTrue(parse(head("HTTP/1.1", "Content-Length: 99999999999999999999999999")).contentLength()
                > 1L << 50, "a huge length stays huge, it does not overflow");
    }

    @Test
    void contentLengthWithTransferEncodingIsRequestSmuggling() {
        assertRefused(head("HTTP/1.1", "Content-Length: 5", "Transfer-Encoding: chunked"),
                HttpResponseStatus.BAD_REQUEST, "request_smuggling");
        assertRefused(head("HTTP/1.1", "Transfer-Encoding: chunked", "Content-Length: 5"),
                HttpResponseStatus.BAD_REQUEST, "request_smuggling");
        assertRefused(head("HTTP/1.1", "transfer-encoding: CHUNKED", "Host: h", "content-length: 0"),
                HttpResponseStatus.BAD_REQUEST, "request_smuggling");
    }

    @Test
    void onlyChunkedAloneIsAcceptedAsTransferEncoding() throws BadRequest {
        assertRefused(head("HTTP/1.1", "Transfer-Encoding: gzip, chunked"),
                HttpResponseStatus.NOT_IMPLEMENTED, "transfer_coding_unsupported");
        assertRefused(head("HTTP/1.1", "Transfer-Encoding: gzip,chunked"),
                HttpResponseStatus.NOT_IMPLEMENTED, "transfer_coding_unsupported");
        assertRefused(head("HTTP/1.1", "Transfer-Encoding: identity"), HttpResponseStatus.BAD_REQUEST, "bad_request");
        assertRefused(head("HTTP/1.1", "Transfer-Encoding: chunked, gzip"),
                HttpResponseStatus.BAD_REQUEST, "bad_request");
        assertRefused(head("HTTP/1.1", "Transfer-Encoding:"), HttpResponseStatus.BAD_REQUEST, "bad_request");
        assertRefused(head("HTTP/1.1", "Transfer-Encoding: chunked,"), HttpResponseStatus.BAD_REQUEST, "bad_request");
        assertRefused(head("HTTP/1.1", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"),
                HttpResponseStatus.NOT_IMPLEMENTED, "transfer_coding_unsupported");
        assertRefused(head("HTTP/1.1", "Transfer-Encoding: gzip", "transfer-encoding: chunked"),
                HttpResponseStatus.NOT_IMPLEMENTED, "transfer_coding_unsupported");

        for (String chunked : new String[] {"chunked", "Chunked", "CHUNKED", "cHuNkEd", "  chunked\t"}) {
            RequestHead head = parse(head("HTTP/1.1", "Transfer-Encoding: " + chunked));
            assertTrue(head.chunked(), chunked);
            assertEquals(-1, head.contentLength(), chunked);
        }
        RequestHead plain = parse(head("HTTP/1.1", "Content-Length: 3"));
        assertFalse(plain.chunked());
        assertEquals(3, plain.contentLength());
    }

    @Test
    void anHttp10RequestWithTransferEncodingIsRefused() {
        // RFC 9112 §6.1: HTTP/1.0 framing with Transfer-Encoding is faulty; Nginx answers 400 too.
        String raw = "POST /v1/chat/completions HTTP/1.0\r\nConnection: keep-alive\r\n"
                + "Transfer-Encoding: chunked\r\n\r\n";
        BadRequest e = assertThrows(BadRequest.class, () -> new RequestHeadParser().parse(buf(raw)));
        assertEquals(HttpResponseStatus.BAD_REQUEST, e.status);
        assertEquals("bad_request", e.code);
    }

    // ---- limits ----

    /** A request line of exactly {@code length} bytes before its CRLF. */
    private static String requestLine(int length) {
        String prefix = "GET /";
        String suffix = " HTTP/1.1";
        return prefix + "a".repeat(length - prefix.length() - suffix.length()) + suffix;
    }

    @Test
    void aRequestLineAtTheLimitIsAccepted() throws BadRequest {
        String line = requestLine(RequestHeadParser.MAX_REQUEST_LINE);
        RequestHead head = parse(line + "\r\nHost: h\r\n\r\n");
        assertEquals(RequestHeadParser.MAX_REQUEST_LINE - "GET  HTTP/1.1".length(), head.uri().length());
        assertEquals("h", head.headers().get("host"));
    }

    @Test
    void aRequestLineOverTheLimitIsUriTooLong() {
        String line = requestLine(RequestHeadParser.MAX_REQUEST_LINE + 1);
        assertRefused(line + "\r\nHost: h\r\n\r\n", HttpResponseStatus.REQUEST_URI_TOO_LONG, "uri_too_long");
        assertRefused(requestLine(RequestHeadParser.MAX_REQUEST_LINE * 3) + "\r\n\r\n",
                HttpResponseStatus.REQUEST_URI_TOO_LONG, "uri_too_long");
    }

    @Test
    void anIncompleteRequestLineOverTheLimitIsUriTooLongWithoutWaitingForItsEnd() throws BadRequest {
        String start = "GET /" + "a".repeat(RequestHeadParser.MAX_REQUEST_LINE + 100);
        assertRefused(start, HttpResponseStatus.REQUEST_URI_TOO_LONG, "uri_too_long");

        // Fed a byte at a time, it is refused as soon as it cannot be a line within the limit.
        RequestHeadParser parser = new RequestHeadParser();
        ByteBuf in = empty(RequestHeadParser.MAX_REQUEST_LINE + 8);
        in.writeBytes(bytes("GET /"));
        while (in.readableBytes() < RequestHeadParser.MAX_REQUEST_LINE) {
            in.writeByte('a');
            assertNull(parser.parse(in), "at " + in.readableBytes());
        }
        in.writeByte('a');
        assertNull(parser.parse(in), "one byte more may be the CR before the LF");
        in.writeByte('a');
        BadRequest e = assertThrows(BadRequest.class, () -> parser.parse(in));
        assertEquals(HttpResponseStatus.REQUEST_URI_TOO_LONG, e.status);
        assertEquals("uri_too_long", e.code);
    }

    /** Header lines of exactly {@code length} bytes in all, each with its CRLF, without the blank line. */
    private static String headerSection(int length) {
        StringBuilder b = new StringBuilder();
        while (length - b.length() > 1100) {
            b.append("X-Fill: ").append("f".repeat(1000 - 10)).append("\r\n");
        }
        int rest = length - b.length();
        b.append("X-End: ").append("e".repeat(rest - 9)).append("\r\n");
        assertEquals(length, b.length());
        return b.toString();
    }

    @Test
    void aHeaderSectionAtOrJustUnderTheLimitIsAccepted() throws BadRequest {
        for (int size : new int[] {RequestHeadParser.MAX_HEADER_SECTION, RequestHeadParser.MAX_HEADER_SECTION - 1}) {
            String raw = "POST /v1/chat/completions HTTP/1.1\r\n" + headerSection(size) + "\r\n";
            ByteBuf in = buf(raw + "{}");
            RequestHead head = new RequestHeadParser().parse(in);
            assertNotNull(head, "size " + size);
            assertEquals(raw.length(), in.readerIndex(), "size " + size);
            assertTrue(head.headers().get("x-end").startsWith("eee"), "size " + size);

            // Also when it arrives byte by byte.
            RequestHeadParser parser = new RequestHeadParser();
            ByteBuf trickle = empty(raw.length());
            byte[] b = bytes(raw);
            for (int i = 0; i < b.length - 1; i++) {
                trickle.writeByte(b[i]);
                assertNull(parser.parse(trickle), "size " + size + " at " + i);
            }
            trickle.writeByte(b[b.length - 1]);
            assertNotNull(parser.parse(trickle), "size " + size);
        }
    }

    @Test
    void aHeaderSectionOverTheLimitIsTooLarge() {
        String raw = "POST /v1/chat/completions HTTP/1.1\r\n"
                + headerSection(RequestHeadParser.MAX_HEADER_SECTION + 1) + "\r\n";
        assertRefused(raw, HttpResponseStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large");
        assertRefused(raw + SDK_BODY, HttpResponseStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large");
        assertRefused("GET / HTTP/1.1\n" + headerSection(RequestHeadParser.MAX_HEADER_SECTION * 2).replace("\r\n", "\n")
                + "\n", HttpResponseStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large");
    }

    @Test
    void anIncompleteHeaderSectionOverTheLimitIsTooLargeWithoutWaitingForItsEnd() throws BadRequest {
        assertRefused("GET / HTTP/1.1\r\n" + headerSection(RequestHeadParser.MAX_HEADER_SECTION + 100),
                HttpResponseStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large");
        // One header line that never ends.
        assertRefused("GET / HTTP/1.1\r\nX-Long: " + "x".repeat(RequestHeadParser.MAX_HEADER_SECTION + 100),
                HttpResponseStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large");

        // Lines at the limit without the blank line yet: still a possible head.
        RequestHeadParser parser = new RequestHeadParser();
        String lines = headerSection(RequestHeadParser.MAX_HEADER_SECTION);
        ByteBuf in = empty(lines.length() + 64);
        in.writeBytes(bytes("GET / HTTP/1.1\r\n" + lines));
        assertNull(parser.parse(in));
        in.writeBytes(bytes("X"));
        assertNull(parser.parse(in));
        in.writeBytes(bytes("-Y: z"));
        BadRequest e = assertThrows(BadRequest.class, () -> parser.parse(in));
        assertEquals(HttpResponseStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, e.status);
        assertEquals("headers_too_large", e.code);
    }

    @Test
    void smallerLimitsGivenToTheConstructorApply() throws BadRequest {
        // A request line of 20 bytes and a header section of 10 (with its CRLF) are within the limits.
        assertNotNull(new RequestHeadParser(20, 10).parse(buf("GET /012345 HTTP/1.1\r\nA: 12345\r\n\r\n")));
        BadRequest line = assertThrows(BadRequest.class,
                () -> new RequestHeadParser(20, 10).parse(buf("GET /0123456 HTTP/1.1\r\nA: 12345\r\n\r\n")));
        assertEquals("uri_too_long", line.code);
        BadRequest fields = assertThrows(BadRequest.class,
                () -> new RequestHeadParser(20, 10).parse(buf("GET /012345 HTTP/1.1\r\nA: 123456\r\n\r\n")));
        assertEquals("headers_too_large", fields.code);
    }

    // ---- connection and expectations ----

    @Test
    void keepAliveFollowsTheVersionAndTheConnectionTokens() throws BadRequest {
        assertTrue(parse(head("HTTP/1.1")).keepAlive());
        assertTrue(parse(head("HTTP/1.1", "Connection: keep-alive")).keepAlive());
        assertTrue(parse(head("HTTP/1.1", "Connection: upgrade")).keepAlive());
        assertTrue(parse(head("HTTP/1.1", "Connection: closed")).keepAlive(), "close is a whole token");
        assertTrue(parse(head("HTTP/1.1", "X-Connection: close")).keepAlive());
        assertFalse(parse(head("HTTP/1.1", "Connection: close")).keepAlive());
        assertFalse(parse(head("HTTP/1.1", "connection: CLOSE")).keepAlive());
        assertFalse(parse(head("HTTP/1.1", "Connection: keep-alive, Close")).keepAlive());
        assertFalse(parse(head("HTTP/1.1", "Connection: te,\tclose ,upgrade")).keepAlive());
        assertFalse(parse(head("HTTP/1.1", "Connection: keep-alive", "Connection: close")).keepAlive());

        assertFalse(parse(head("HTTP/1.0")).keepAlive());
        assertFalse(parse(head("HTTP/1.0", "Connection: close")).keepAlive());
        assertTrue(parse(head("HTTP/1.0", "Connection: keep-alive")).keepAlive());
        assertTrue(parse(head("HTTP/1.0", "Connection: Keep-Alive")).keepAlive());
        assertTrue(parse(head("HTTP/1.0", "Connection: te, keep-alive")).keepAlive());
        assertFalse(parse(head("HTTP/1.0", "Connection: keep-alive, close")).keepAlive());
        assertFalse(parse(head("HTTP/1.0", "Connection: keep-alive-ish")).keepAlive());
    }

    @Test
    void expectContinueOnlyForHttp11With100Continue() throws BadRequest {
        assertTrue(parse(head("HTTP/1.1", "Expect: 100-continue")).expectContinue());
        assertTrue(parse(head("HTTP/1.1", "expect: 100-Continue")).expectContinue());
        assertTrue(parse(head("HTTP/1.1", "EXPECT:  100-CONTINUE ")).expectContinue());
        assertFalse(parse(head("HTTP/1.1")).expectContinue());
        assertFalse(parse(head("HTTP/1.1", "Expect: 100-continue-please")).expectContinue());
        assertFalse(parse(head("HTTP/1.1", "Expect: 200-ok")).expectContinue());
        assertFalse(parse(head("HTTP/1.1", "X-Expect: 100-continue")).expectContinue());
        assertFalse(parse(head("HTTP/1.0", "Expect: 100-continue")).expectContinue());
    }

    // ---- the fields ----

    @Test
    void bytesAbove0x7fInAValueAreKeptOneCharPerByte() throws BadRequest {
        String value = "caf\u00e9 \u0080\u00a0\u00ff \u00c3\u00a9";
        RequestHeaders h = parse(head("HTTP/1.1", "Host: h", "X-Name: " + value)).headers();
        assertEquals(value, h.get("x-name"));
        assertEquals(value.length(), h.value(1).length());

        int i = h.indexOf("x-name", 0);
        byte[] out = new byte[h.lineLength(i) + 3];
        int end = h.writeLine(i, out, 3);
        assertEquals(out.length, end);
        byte[] expected = bytes("X-Name: " + value + "\r\n");
        byte[] written = new byte[end - 3];
        System.arraycopy(out, 3, written, 0, written.length);
        assertArrayEquals(expected, written);
        assertEquals((byte) 0xff, written["X-Name: caf\u00e9 \u0080\u00a0".length()]);
    }

    @Test
    void writeLineCopiesNameAsReceivedAndTheTrimmedValue() throws BadRequest {
        RequestHeaders h = parse(head("HTTP/1.1", "X-MiXeD:\t  v a l  \t", "B:")).headers();
        byte[] out = new byte[h.lineLength(0) + h.lineLength(1)];
        int at = h.writeLine(0, out, 0);
        assertEquals(h.lineLength(0), at);
        at = h.writeLine(1, out, at);
        assertEquals(out.length, at);
        assertEquals("X-MiXeD: v a l\r\nB: \r\n", new String(out, StandardCharsets.ISO_8859_1));
    }

    @Test
    void aRemovedFieldIsNeitherFoundNorListed() throws BadRequest {
        RequestHeaders h = parse(head("HTTP/1.1", "Host: h", "Proxy-Authorization: secret", "X-A: 1",
                "proxy-authorization: again", "X-B: 2")).headers();
        h.remove("PROXY-AUTHORIZATION");

        assertEquals(5, h.size(), "removed fields still count");
        assertTrue(h.removed(1));
        assertTrue(h.removed(3));
        assertFalse(h.removed(0));
        assertFalse(h.removed(2));
        assertFalse(h.removed(4));
        assertNull(h.get("proxy-authorization"));
        assertFalse(h.contains("Proxy-Authorization"));
        assertEquals(List.of(), h.getAll("proxy-authorization"));
        assertEquals(-1, h.indexOf("proxy-authorization", 0));
        assertFalse(h.nameIs(1, "proxy-authorization"));
        assertEquals("h", h.get("host"));
        assertEquals("1", h.get("x-a"));
        assertEquals("2", h.get("x-b"));
        assertEquals(4, h.indexOf("x-b", 0));
        assertEquals("Host: h\nX-A: 1\nX-B: 2\n", h.toString());

        h.remove("x-missing");
        assertEquals("Host: h\nX-A: 1\nX-B: 2\n", h.toString());
    }

    @Test
    void nameViewIsTheName() throws BadRequest {
        RequestHeaders h = parse(SDK_HEAD).headers();
        FieldNameView view = h.nameView();
        for (int i = 0; i < h.size(); i++) {
            view.at(i);
            assertEquals(h.name(i), view.toString());
            assertTrue(AsciiString.contentEquals(view, h.name(i)));
            assertEquals(h.name(i).length(), view.length());
            assertEquals(h.name(i).length(), h.nameLength(i));
            assertEquals(h.name(i).substring(1, 3), view.subSequence(1, 3).toString());
            assertTrue(h.nameIs(i, view));
            assertTrue(h.nameIs(i, h.name(i).toLowerCase()));
        }
        assertEquals("Content-Type", view.at(h.indexOf("content-type", 0)).toString());
        assertThrows(IndexOutOfBoundsException.class, () -> view.charAt(view.length()));
    }
}
