package io.megallm.proxy.upstream;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.megallm.proxy.testing.FuzzInput;
import io.netty.buffer.AbstractByteBufAllocator;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledHeapByteBuf;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpResponse;

import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Coverage-guided fuzzing of {@link ResponseParser} (see the README's "Fuzzing"). In a plain
 * {@code mvn verify} this replays the seeds in {@code ResponseParserFuzzTestInputs/responses/};
 * with {@code JAZZER_FUZZ=1} Jazzer mutates them. The wire bytes are what an upstream sends for
 * one request; the connection closes after them. For every input, with the sink asking for chunked
 * bodies raw (framing included) and as payload only:
 *
 * <ul>
 *   <li>the parser throws nothing but {@link MalformedResponseException};</li>
 *   <li>the sink hears a head, then body, then at most one end, in that order, and no empty body;</li>
 *   <li>the head, the end, the trailers, and (unless the response was refused) the body are the
 *       same whole, in two reads at a fuzzer-chosen cut, and in many reads of a fuzzer-chosen size;</li>
 *   <li>a chunked body passed raw, once its framing is taken off, is the payload the other mode
 *       passes, and both modes end alike;</li>
 *   <li>every buffer fed to the parser or allocated by it is released by the end (refCnt 0): at
 *       the response's end without help, after a refusal once {@code releaseBuffers()} ran;</li>
 *   <li>what it keeps of a head in progress stays within its (here small) head limit.</li>
 * </ul>
 */
class ResponseParserFuzzTest {

    /** Small, so that fuzz inputs reach it. */
    private static final int MAX_HEAD = 256;

    @FuzzTest
    void responses(byte[] data) {
        FuzzInput input = FuzzInput.of(data);
        List<List<byte[]>> feedings = input.feedings();
        Map<Boolean, Outcome> byMode = new java.util.HashMap<>();
        for (boolean raw : new boolean[] {false, true}) {
            Outcome whole = parse(feedings.get(0), raw, input.flag);
            for (List<byte[]> reads : feedings.subList(1, feedings.size())) {
                Outcome split = parse(reads, raw, input.flag);
                assertEquals(whole.summary(), split.summary(), "raw=" + raw + ", " + FuzzInput.describe(reads));
            }
            byMode.put(raw, whole);
        }
        Outcome payload = byMode.get(false);
        Outcome raw = byMode.get(true);
        assertEquals(payload.head, raw.head, "the head does not depend on the body mode");
        if (payload.error == null && raw.error == null && payload.end != null && raw.end != null) {
            assertEquals(payload.end, raw.end, "the end does not depend on the body mode");
            byte[] rawBody = raw.body.toByteArray();
            byte[] expected = payload.body.toByteArray();
            byte[] got = payload.chunked ? dechunk(rawBody) : rawBody;
            assertEquals(HexFormat.of().formatHex(expected), got == null ? "unreadable framing" : HexFormat.of().formatHex(got),
                    "the raw body, its framing taken off, is the payload");
        }
    }

    /** What the sink heard from one feeding. */
    private static final class Outcome implements ResponseParser.Sink {
        final boolean raw;
        String head;
        boolean chunked;
        final ByteArrayOutputStream body = new ByteArrayOutputStream();
        String end;
        String error;

        Outcome(boolean raw) {
            this.raw = raw;
        }

        @Override
        public boolean onHead(HttpResponse response, boolean chunked) {
            assertNull(head, "a second final head");
            noLineBreak("reason phrase", response.status().reasonPhrase());
            StringBuilder b = new StringBuilder().append(response.protocolVersion()).append(' ')
                    .append(response.status().code()).append(' ').append(response.status().reasonPhrase())
                    .append(" chunked=").append(chunked);
            headers(b, response.headers());
            head = b.toString();
            this.chunked = chunked;
            return raw;
        }

        @Override
        public void onBody(ByteBuf bytes) {
            try {
                assertNotNull(head, "body before the head");
                assertNull(end, "body after the end");
                assertTrue(bytes.isReadable(), "an empty body part");
                byte[] b = new byte[bytes.readableBytes()];
                bytes.getBytes(bytes.readerIndex(), b);
                body.writeBytes(b);
            } finally {
                bytes.release();
            }
        }

        @Override
        public void onEnd(HttpHeaders trailers) {
            assertNotNull(head, "an end before the head");
            assertNull(end, "a second end");
            StringBuilder b = new StringBuilder("end");
            headers(b, trailers);
            end = b.toString();
        }

        String summary() {
            // A refused response may have passed more or less of its body before the refusal,
            // depending on the reads; everything else must not depend on them.
            return head + "\n" + (error != null ? "refused" : HexFormat.of().formatHex(body.toByteArray()))
                    + "\n" + end + "\n" + error;
        }

        /**
         * Appends the fields; checks on the way that nothing the client side will write out
         * could end a line or a head early: no CR, LF or NUL in a name or value.
         */
        private static void headers(StringBuilder b, HttpHeaders headers) {
            headers.forEach(h -> {
                noLineBreak("header name", h.getKey());
                noLineBreak("header value", h.getValue());
                b.append(" | ").append(h.getKey()).append(": ").append(h.getValue());
            });
        }

        private static void noLineBreak(String what, String text) {
            for (int i = 0; i < text.length(); i++) {
                char c = text.charAt(i);
                if (c == '\r' || c == '\n' || c == 0) {
                    fail("CR, LF or NUL in a " + what + ": " + text);
                }
            }
        }
    }

    /** Records every buffer the parser allocates (without leak tracking, which is too slow to fuzz with). */
    private static final class TrackingAllocator extends AbstractByteBufAllocator {
        final List<ByteBuf> allocated = new ArrayList<>();

        @Override
        protected ByteBuf newHeapBuffer(int initialCapacity, int maxCapacity) {
            ByteBuf b = new UnpooledHeapByteBuf(this, initialCapacity, maxCapacity);
            allocated.add(b);
            return b;
        }

        @Override
        protected ByteBuf newDirectBuffer(int initialCapacity, int maxCapacity) {
            // The parser only asks for heap buffers; a heap one stands in all the same.
            return newHeapBuffer(initialCapacity, maxCapacity);
        }

        @Override
        public boolean isDirectBufferPooled() {
            return false;
        }

        int liveBytes() {
            int n = 0;
            for (ByteBuf b : allocated) {
                if (b.refCnt() > 0) {
                    n += b.readableBytes();
                }
            }
            return n;
        }
    }

    private static Outcome parse(List<byte[]> reads, boolean raw, boolean headRequest) {
        Outcome out = new Outcome(raw);
        ResponseParser parser = new ResponseParser(out, MAX_HEAD);
        TrackingAllocator alloc = new TrackingAllocator();
        ByteBufAllocator feedAlloc = alloc;
        List<ByteBuf> fed = new ArrayList<>();
        parser.reset(headRequest);
        try {
            for (byte[] read : reads) {
                ByteBuf in = Unpooled.wrappedBuffer(read.clone());
                fed.add(in);
                parser.feed(in, feedAlloc);
                assertTrue(alloc.liveBytes() <= MAX_HEAD, "a head in progress is kept within the limit");
            }
            boolean untilClose = parser.endsAtClose();
            boolean endedAtClose = parser.closed();
            assertEquals(untilClose, endedAtClose, "closed() ends exactly a body that runs until the close");
            if (out.end != null) {
                assertFalse(parser.inResponse(), "the response ended");
                assertAllReleased(fed, alloc, "after the end, before releaseBuffers()");
            }
        } catch (MalformedResponseException e) {
            assertNotNull(e.getMessage());
            out.error = "malformed";
        }
        parser.releaseBuffers();
        assertAllReleased(fed, alloc, "after releaseBuffers()");
        return out;
    }

    private static void assertAllReleased(List<ByteBuf> fed, TrackingAllocator alloc, String when) {
        for (ByteBuf b : fed) {
            assertEquals(0, b.refCnt(), "a fed buffer still referenced " + when);
        }
        for (ByteBuf b : alloc.allocated) {
            assertEquals(0, b.refCnt(), "an allocated buffer still referenced " + when);
        }
    }

    /**
     * The payload of a chunked body as passed raw (the last chunk is never passed): sizes, optional
     * extensions, CR LF after each line and each chunk's data. Null if the framing cannot be read,
     * which for bytes the parser accepted is itself a finding.
     */
    private static byte[] dechunk(byte[] raw) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int p = 0;
        while (p < raw.length) {
            int cr = p;
            while (cr < raw.length && raw[cr] != '\r') {
                cr++;
            }
            if (cr + 1 >= raw.length || raw[cr + 1] != '\n') {
                return null;
            }
            int d = p;
            long size = 0;
            while (d < cr && Character.digit(raw[d], 16) >= 0) {
                size = size * 16 + Character.digit(raw[d], 16);
                if (size > raw.length) {
                    return null;
                }
                d++;
            }
            if (d == p || size == 0) {
                return null;
            }
            p = cr + 2;
            if (p + size + 2 > raw.length || raw[p + (int) size] != '\r' || raw[p + (int) size + 1] != '\n') {
                return null;
            }
            out.write(raw, p, (int) size);
            p += (int) size + 2;
        }
        if (p != raw.length) {
            fail("raw body ends inside framing");
        }
        return out.toByteArray();
    }
}
