package io.megallm.proxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.handler.codec.http.HttpResponseStatus;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link ChunkedBodyDecoder} over buffers: the body it hands out, where it stops, what it refuses. */
class ChunkedBodyDecoderTest {

    private static final int MAX_TRAILER = RequestHeadParser.MAX_HEADER_SECTION;

    /** The body of a streaming chat completion request, in chunks of the sizes a client might pick. */
    private static final String JSON = "{\"model\":\"gpt-4o\",\"stream\":true,\"messages\":[{\"role\":\"user\","
            + "\"content\":\"caf\u00e9\"}]}";

    /** Every buffer this test made, released once by the test's end and then checked for refCnt 0. */
    private final List<ByteBuf> mine = new ArrayList<>();
    /** The slices the sink received and the test has not read yet. */
    private final List<ByteBuf> parts = new ArrayList<>();
    /** Every slice the sink ever received. */
    private final List<ByteBuf> allParts = new ArrayList<>();
    private final ChunkedBodyDecoder.Sink sink = (in, n) -> {
        ByteBuf part = in.readRetainedSlice(n);
        parts.add(part);
        allParts.add(part);
    };

    @AfterEach
    void nothingLeaks() {
        List<String> leaked = new ArrayList<>();
        for (ByteBuf p : parts) {
            leaked.add("unread part " + p);
            p.release();
        }
        for (ByteBuf b : mine) {
            if (b.refCnt() > 0) {
                b.release();
            }
        }
        for (ByteBuf b : mine) {
            if (b.refCnt() != 0) {
                leaked.add("refCnt " + b.refCnt() + ": " + b);
                b.release(b.refCnt());
            }
        }
        for (ByteBuf p : allParts) {
            if (p.refCnt() != 0) {
                leaked.add("part refCnt " + p.refCnt() + ": " + p);
            }
        }
        assertTrue(leaked.isEmpty(), leaked.toString());
    }

    // ---- harness ----

    private ByteBuf in(String raw) {
        ByteBuf b = Unpooled.copiedBuffer(raw, StandardCharsets.ISO_8859_1);
        mine.add(b);
        return b;
    }

    /** An empty buffer to write into, like a connection's cumulation; large enough never to grow. */
    private ByteBuf cumulation(int capacity) {
        ByteBuf b = Unpooled.buffer(capacity, capacity);
        mine.add(b);
        return b;
    }

    private static byte[] bytes(String raw) {
        return raw.getBytes(StandardCharsets.ISO_8859_1);
    }

    /** The body received so far, as text; releases the parts. */
    private String body() {
        StringBuilder b = new StringBuilder();
        for (ByteBuf p : parts) {
            b.append(p.toString(StandardCharsets.ISO_8859_1));
            p.release();
        }
        parts.clear();
        return b.toString();
    }

    /** {@code body} in chunks of the given sizes, with the last chunk and an empty trailer section. */
    private static String chunked(String body, int... sizes) {
        StringBuilder b = new StringBuilder();
        int at = 0;
        for (int size : sizes) {
            b.append(Integer.toHexString(size)).append("\r\n").append(body, at, at + size).append("\r\n");
            at += size;
        }
        assertEquals(body.length(), at);
        return b.append("0\r\n\r\n").toString();
    }

    private BadRequest refused(ChunkedBodyDecoder decoder, String raw) {
        BadRequest e = assertThrows(BadRequest.class, () -> decoder.decode(in(raw), sink), raw);
        body();
        return e;
    }

    private void assertRefused(String raw, HttpResponseStatus status, String code) {
        BadRequest e = refused(new ChunkedBodyDecoder(MAX_TRAILER), raw);
        assertEquals(status, e.status, raw);
        assertEquals(code, e.code, raw);
        assertFalse(e.getMessage().isBlank(), raw);
    }

    private void assertMalformed(String raw) {
        assertRefused(raw, HttpResponseStatus.BAD_REQUEST, "malformed_http");
    }

    // ---- bodies ----

    @Test
    void aSimpleBodyIsTheConcatenationOfItsChunks() throws BadRequest {
        ByteBuf in = in(chunked(JSON, 9, 8, 14, JSON.length() - 31));
        assertTrue(new ChunkedBodyDecoder(MAX_TRAILER).decode(in, sink));
        assertFalse(in.isReadable(), "everything up to the blank line is read");
        assertEquals(4, parts.size(), "one slice per chunk");
        assertEquals(1 + 4, in.refCnt(), "the parts are retained slices of the received buffer, not copies");
        assertEquals(JSON, body());
        assertEquals(1, in.refCnt());
    }

    @Test
    void hexSizesInEitherCaseAndWithLeadingZerosAreRead() throws BadRequest {
        String data = "x".repeat(0x1a) + "y".repeat(0xF);
        ByteBuf in = in("1a\r\n" + "x".repeat(0x1a) + "\r\n00F\r\n" + "y".repeat(0xF) + "\r\n000\r\n\r\n");
        assertTrue(new ChunkedBodyDecoder(MAX_TRAILER).decode(in, sink));
        assertEquals(data, body());
    }

    @Test
    void anEmptyBodyIsJustTheLastChunk() throws BadRequest {
        ByteBuf in = in("0\r\n\r\n");
        assertTrue(new ChunkedBodyDecoder(MAX_TRAILER).decode(in, sink));
        assertTrue(parts.isEmpty());
        assertFalse(in.isReadable());
    }

    @Test
    void chunkExtensionsAreIgnored() throws BadRequest {
        ByteBuf in = in("5;a=b\r\nhello\r\n6 ; name=\"quoted value\";flag\r\n world\r\n1;\t x\r\n!\r\n0;last=yes\r\n\r\n");
        assertTrue(new ChunkedBodyDecoder(MAX_TRAILER).decode(in, sink));
        assertEquals("hello world!", body());
        assertFalse(in.isReadable());
    }

    @Test
    void bareLfLineEndsAreAccepted() throws BadRequest {
        ByteBuf in = in("5\nhello\n1;x=y\n \n0\n\n");
        assertTrue(new ChunkedBodyDecoder(MAX_TRAILER).decode(in, sink));
        assertEquals("hello ", body());
        assertFalse(in.isReadable());
    }

    @Test
    void dataBytesAreKeptAsTheyAre() throws BadRequest {
        String data = "\r\n0\r\n\r\n\u0000\u00ff\u0080;";
        ByteBuf in = in(Integer.toHexString(data.length()) + "\r\n" + data + "\r\n0\r\n\r\n");
        assertTrue(new ChunkedBodyDecoder(MAX_TRAILER).decode(in, sink));
        assertEquals(data, body(), "chunk data that looks like framing is data");
    }

    @Test
    void trailersAreReadAndDroppedAndTheBodyEndsOnlyAfterTheirBlankLine() throws BadRequest {
        ChunkedBodyDecoder decoder = new ChunkedBodyDecoder(MAX_TRAILER);
        ByteBuf in = cumulation(256);
        in.writeBytes(bytes("5\r\nhello\r\n0\r\n"));
        assertFalse(decoder.decode(in, sink), "the trailer section has not ended");
        in.writeBytes(bytes("X-Checksum: sha256=abc\r\n"));
        assertFalse(decoder.decode(in, sink));
        in.writeBytes(bytes("X-Other:1\nX-Third: 3\r\n"));
        assertFalse(decoder.decode(in, sink));
        in.writeBytes(bytes("\r"));
        assertFalse(decoder.decode(in, sink));
        in.writeBytes(bytes("\nGET /next HTTP/1.1\r\n"));
        assertTrue(decoder.decode(in, sink));
        assertEquals("hello", body());
        assertEquals("GET /next HTTP/1.1\r\n", in.toString(StandardCharsets.ISO_8859_1));
    }

    @Test
    void bytesAfterTheEndStayUnreadForTheNextRequest() throws BadRequest {
        String next = "POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        ByteBuf in = in("3\r\nabc\r\n0\r\n\r\n" + next);
        ChunkedBodyDecoder decoder = new ChunkedBodyDecoder(MAX_TRAILER);
        assertTrue(decoder.decode(in, sink));
        assertEquals("abc", body());
        assertEquals(next, in.toString(StandardCharsets.ISO_8859_1));

        // The same decoder reads the next body once the next head is read.
        int head = next.indexOf("\r\n\r\n") + 4;
        in.skipBytes(head);
        assertTrue(decoder.decode(in, sink));
        assertEquals("abc", body());
        assertFalse(in.isReadable());
    }

    @Test
    void aChunkWhoseDataArrivesInPiecesGivesOnePartPerPiece() throws BadRequest {
        ChunkedBodyDecoder decoder = new ChunkedBodyDecoder(MAX_TRAILER);
        assertFalse(decoder.decode(in("a\r\n0123"), sink));
        assertFalse(decoder.decode(in("456"), sink));
        assertFalse(decoder.decode(in("789"), sink));
        assertEquals(3, parts.size());
        assertFalse(decoder.decode(in("\r\n"), sink));
        assertTrue(decoder.decode(in("0\r\n\r\n"), sink));
        assertEquals("0123456789", body());
    }

    // ---- bodies that arrive in pieces ----

    private static final String[] BODIES = {
            chunked(JSON, 9, 8, 14, JSON.length() - 31),
            chunked(JSON, JSON.length()),
            "5;a=b\r\nhello\r\n6 ; q=\"v\"\r\n world\r\n0;end\r\nX-T: 1\r\nX-U:2\r\n\r\n",
            "5\nhello\n1\n!\n0\nX-T: 1\n\n",
            "1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n",
    };

    private String whole(String raw) throws BadRequest {
        assertTrue(new ChunkedBodyDecoder(MAX_TRAILER).decode(in(raw), sink), raw);
        return body();
    }

    @Test
    void aBodyFedOneByteAtATimeIsTheSameAndEndsAtItsLastByte() throws BadRequest {
        for (String raw : BODIES) {
            String expected = whole(raw);
            byte[] b = bytes(raw);
            ChunkedBodyDecoder decoder = new ChunkedBodyDecoder(MAX_TRAILER);
            ByteBuf in = cumulation(b.length);
            for (int i = 0; i < b.length - 1; i++) {
                in.writeByte(b[i]);
                assertFalse(decoder.decode(in, sink), "after byte " + i + " of " + raw);
            }
            in.writeByte(b[b.length - 1]);
            assertTrue(decoder.decode(in, sink), raw);
            assertFalse(in.isReadable(), raw);
            assertEquals(expected, body(), raw);
        }
    }

    @Test
    void aBodySplitAtEveryPositionIntoTwoWritesIsTheSame() throws BadRequest {
        String next = "GET / HTTP/1.1\r\n\r\n";
        for (String raw : BODIES) {
            String expected = whole(raw);
            byte[] b = bytes(raw + next);
            int end = raw.length();
            for (int k = 0; k <= b.length; k++) {
                ChunkedBodyDecoder decoder = new ChunkedBodyDecoder(MAX_TRAILER);
                ByteBuf in = cumulation(b.length);
                in.writeBytes(b, 0, k);
                assertEquals(k >= end, decoder.decode(in, sink), "split at " + k + " of " + raw);
                if (k < end) {
                    in.writeBytes(b, k, b.length - k);
                    assertTrue(decoder.decode(in, sink), "split at " + k + " of " + raw);
                }
                assertEquals(expected, body(), "split at " + k + " of " + raw);
                assertEquals(end, in.readerIndex(), "split at " + k + " of " + raw);
            }
        }
    }

    @Test
    void aBodySplitAtEveryPairOfPositionsIntoThreeWritesIsTheSame() throws BadRequest {
        for (String raw : BODIES) {
            String expected = whole(raw);
            byte[] b = bytes(raw);
            for (int i = 0; i <= b.length; i++) {
                for (int j = i; j <= b.length; j++) {
                    ChunkedBodyDecoder decoder = new ChunkedBodyDecoder(MAX_TRAILER);
                    ByteBuf in = cumulation(b.length);
                    for (int[] piece : new int[][] {{0, i}, {i, j}, {j, b.length}}) {
                        if (piece[0] == piece[1]) {
                            continue;
                        }
                        in.writeBytes(b, piece[0], piece[1] - piece[0]);
                        assertEquals(piece[1] == b.length, decoder.decode(in, sink),
                                "split at " + i + ", " + j + " of " + raw + ", after " + piece[1]);
                    }
                    assertEquals(expected, body(), "split at " + i + ", " + j + " of " + raw);
                    assertFalse(in.isReadable());
                }
            }
        }
    }

    // ---- refusals ----

    @Test
    void anInvalidChunkSizeIsRefused() {
        assertMalformed("zz\r\nhello\r\n0\r\n\r\n");
        assertMalformed("5x\r\nhello\r\n0\r\n\r\n");
        assertMalformed(" 5\r\nhello\r\n0\r\n\r\n");
        assertMalformed("-5\r\nhello\r\n0\r\n\r\n");
        assertMalformed("+5\r\nhello\r\n0\r\n\r\n");
        assertMalformed("0x5\r\nhello\r\n0\r\n\r\n");
        assertMalformed("\r\nhello\r\n0\r\n\r\n");
        assertMalformed("\nhello\r\n0\r\n\r\n");
        assertMalformed(";ext\r\n");
        assertMalformed("5\r\r\nhello\r\n0\r\n\r\n");
        assertMalformed("5\rx\nhello\r\n0\r\n\r\n");
        assertMalformed("5;a\u0000b\r\nhello\r\n0\r\n\r\n");
        assertMalformed("5;a\rb\r\nhello\r\n0\r\n\r\n");
        assertMalformed("5;a\u007f\r\nhello\r\n0\r\n\r\n");
        assertMalformed("\u00b5\r\nhello\r\n0\r\n\r\n");
    }

    @Test
    void aChunkSizePastWhatCanBeAcceptedIsTooLarge() {
        assertRefused("10000000000000000\r\n", HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE, "request_too_large");
        assertRefused("ffffffffffffffffffff\r\n", HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE, "request_too_large");
    }

    @Test
    void aChunkSizeWrittenWithManyLeadingZerosIsItsValue() throws BadRequest {
        // RFC 9112 §7.1 allows any number of leading zeros (chunk-size = 1*HEXDIG): the size limit
        // is on the value, not on the number of digits.
        ByteBuf in = in("0000000000000000005\r\nhello\r\n00000000000000000\r\n\r\n");
        assertTrue(new ChunkedBodyDecoder(MAX_TRAILER).decode(in, sink));
        assertEquals("hello", body());
    }

    @Test
    void chunkDataNotFollowedByALineEndIsRefused() {
        assertMalformed("3\r\nabcX\r\n0\r\n\r\n");
        assertMalformed("3\r\nabc\rX\n0\r\n\r\n");
        assertMalformed("3\r\nabcd\r\n0\r\n\r\n");
        assertMalformed("3\r\nabc 0\r\n\r\n");
        assertMalformed("5\r\nabc\r\n0\r\n\r\n");
    }

    @Test
    void aSizeLinePastTheLimitIsRefused() throws BadRequest {
        // Without its line end yet: refused as soon as it is longer than 4096 bytes.
        ChunkedBodyDecoder decoder = new ChunkedBodyDecoder(MAX_TRAILER);
        ByteBuf in = cumulation(8192);
        in.writeBytes(bytes("1;" + "e".repeat(4094)));
        assertFalse(decoder.decode(in, sink), "4096 bytes may still be a size line");
        in.writeBytes(bytes("e"));
        BadRequest e = assertThrows(BadRequest.class, () -> decoder.decode(in, sink));
        assertEquals(HttpResponseStatus.BAD_REQUEST, e.status);
        assertEquals("bad_request", e.code);

        assertRefused("1;" + "e".repeat(10_000), HttpResponseStatus.BAD_REQUEST, "bad_request");
        assertRefused("1;" + "e".repeat(4095) + "\r\nx\r\n0\r\n\r\n", HttpResponseStatus.BAD_REQUEST, "bad_request");

        // A size line of 4096 bytes before its LF is within the limit.
        ByteBuf ok = in("1;" + "e".repeat(4093) + "\r\nx\r\n0\r\n\r\n");
        assertTrue(new ChunkedBodyDecoder(MAX_TRAILER).decode(ok, sink));
        assertEquals("x", body());
    }

    @Test
    void aTrailerSectionPastTheLimitIsTooLarge() {
        ChunkedBodyDecoder small = new ChunkedBodyDecoder(32);
        BadRequest e = refused(small, "1\r\nx\r\n0\r\nX-A: " + "a".repeat(20) + "\r\nX-B: " + "b".repeat(20) + "\r\n\r\n");
        assertEquals(HttpResponseStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, e.status);
        assertEquals("headers_too_large", e.code);

        // One trailer line that never ends.
        BadRequest open = refused(new ChunkedBodyDecoder(32), "0\r\nX-A: " + "a".repeat(40));
        assertEquals(HttpResponseStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, open.status);
        assertEquals("headers_too_large", open.code);

        // The default limit, with many short lines.
        StringBuilder many = new StringBuilder("0\r\n");
        while (many.length() < MAX_TRAILER + 100) {
            many.append("X-T: 1\r\n");
        }
        BadRequest big = refused(new ChunkedBodyDecoder(MAX_TRAILER), many.append("\r\n").toString());
        assertEquals(HttpResponseStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, big.status);
    }

    @Test
    void aTrailerSectionAtTheLimitIsAccepted() throws BadRequest {
        // "X-A: aaaa\r\n" is 11 bytes and "X-B: bbbbbbbbbb\r\n" is 17: 28 in all.
        String raw = "1\r\nx\r\n0\r\nX-A: aaaa\r\nX-B: bbbbbbbbbb\r\n\r\n";
        assertTrue(new ChunkedBodyDecoder(28).decode(in(raw), sink));
        assertEquals("x", body());
        assertThrows(BadRequest.class, () -> new ChunkedBodyDecoder(27).decode(in(raw), sink));
        body();
    }

    @Test
    void aTrailerSectionAtTheLimitIsAcceptedHoweverItIsSplit() throws BadRequest {
        // The CR of the final blank line, arriving before its LF, is not a trailer byte: the
        // section at the limit passes however it is split.
        String raw = "1\r\nx\r\n0\r\nX-A: aaaa\r\nX-B: bbbbbbbbbb\r\n\r\n";
        byte[] b = bytes(raw);
        for (int k = 1; k < b.length; k++) {
            ChunkedBodyDecoder decoder = new ChunkedBodyDecoder(28);
            ByteBuf in = cumulation(b.length);
            in.writeBytes(b, 0, k);
            try {
                assertFalse(decoder.decode(in, sink), "split at " + k);
                in.writeBytes(b, k, b.length - k);
                assertTrue(decoder.decode(in, sink), "split at " + k);
            } catch (BadRequest e) {
                body();
                throw new AssertionError("split at " + k + ": " + e.status + " " + e.code, e);
            }
            assertEquals("x", body(), "split at " + k);
        }
    }

    // ---- state ----

    @Test
    void resetLetsTheDecoderStartANewBody() throws BadRequest {
        ChunkedBodyDecoder decoder = new ChunkedBodyDecoder(MAX_TRAILER);

        // Left in chunk data.
        assertFalse(decoder.decode(in("a\r\nhel"), sink));
        assertEquals("hel", body());
        decoder.reset();
        assertTrue(decoder.decode(in("3\r\nabc\r\n0\r\n\r\n"), sink));
        assertEquals("abc", body());

        // Left after chunk data, before its CRLF.
        assertFalse(decoder.decode(in("2\r\nhi"), sink));
        assertEquals("hi", body());
        decoder.reset();
        assertTrue(decoder.decode(in("1\r\nz\r\n0\r\n\r\n"), sink));
        assertEquals("z", body());

        // Left in the trailer section, with trailer bytes counted.
        ChunkedBodyDecoder small = new ChunkedBodyDecoder(16);
        assertFalse(small.decode(in("0\r\nX-Trailer: 12\r\n"), sink));
        small.reset();
        assertTrue(small.decode(in("1\r\nq\r\n0\r\nX-Trailer: 12\r\n\r\n"), sink),
                "the trailer bytes of the abandoned body no longer count");
        assertEquals("q", body());

        // A "0" line read after a reset starts the last chunk, not data.
        assertFalse(decoder.decode(in("5\r\n"), sink));
        decoder.reset();
        assertTrue(decoder.decode(in("0\r\n\r\n"), sink));
        assertTrue(parts.isEmpty());
    }

    @Test
    void aSinkThatRefusesAPartStopsTheBody() {
        BadRequest tooLarge = new BadRequest(HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE, "request_too_large",
                "The request body is larger than the 8 bytes this proxy accepts.");
        long[] received = {0};
        ChunkedBodyDecoder.Sink limited = (from, n) -> {
            // As the reader does: count, and take nothing of a piece it refuses.
            received[0] += n;
            if (received[0] > 8) {
                throw tooLarge;
            }
            ByteBuf part = from.readRetainedSlice(n);
            parts.add(part);
            allParts.add(part);
        };
        ByteBuf in = in("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n");
        BadRequest e = assertThrows(BadRequest.class, () -> new ChunkedBodyDecoder(MAX_TRAILER).decode(in, limited));
        assertSame(tooLarge, e);
        assertEquals("hello", body());
        assertEquals(1, in.refCnt(), "nothing of the refused piece was kept");
    }
}
