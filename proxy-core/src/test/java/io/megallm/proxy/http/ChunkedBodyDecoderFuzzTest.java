package io.megallm.proxy.http;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.megallm.proxy.testing.FuzzInput;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;

import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Coverage-guided fuzzing of {@link ChunkedBodyDecoder} (see the README's "Fuzzing"). In a plain
 * {@code mvn verify} this replays the seeds in {@code ChunkedBodyDecoderFuzzTestInputs/bodies/};
 * with {@code JAZZER_FUZZ=1} Jazzer mutates them. The wire bytes are chunked bodies back to back,
 * as on a keep-alive connection where one decoder reads every body. For every input:
 *
 * <ul>
 *   <li>the decoder throws nothing but {@link BadRequest};</li>
 *   <li>it agrees with {@link #reference}, a plain reading of RFC 9112 §7.1 written for this test:
 *       the same payload and the same end for a valid body within the limits, a refusal for an
 *       invalid one (a limit refusal is also right for anything past a limit), waiting for an
 *       incomplete one;</li>
 *   <li>the outcome is the same whole, in two reads at a fuzzer-chosen cut, and in many reads of a
 *       fuzzer-chosen size;</li>
 *   <li>while waiting, it leaves no more unread than a size line or the trailer limit;</li>
 *   <li>every part it hands out is a retained slice that, once released, leaves the received
 *       buffer at refCnt 1; nothing else is retained.</li>
 * </ul>
 */
class ChunkedBodyDecoderFuzzTest {

    /** Small, so that fuzz inputs reach it. */
    private static final int MAX_TRAILER = 64;
    /** The decoder's own limit on a chunk size line (it is not configurable). */
    private static final int MAX_SIZE_LINE = 4096;
    private static final int MAX_BODIES = 8;

    @FuzzTest
    void bodies(byte[] data) {
        FuzzInput input = FuzzInput.of(data);
        List<List<byte[]>> feedings = input.feedings();
        List<String> whole = outcome(feedings.get(0));
        checkAgainstReference(input.wire, whole);
        for (List<byte[]> reads : feedings.subList(1, feedings.size())) {
            assertEquals(whole, outcome(reads), FuzzInput.describe(reads));
        }
    }

    // ---- the decoder ----

    /** Each body decoded from {@code reads} ("body <hex> @<end>"), then how decoding stopped. */
    private static List<String> outcome(List<byte[]> reads) {
        int total = 0;
        for (byte[] r : reads) {
            total += r.length;
        }
        // A wrapped array is not leak-tracked (paranoid tracking of every getByte would make the
        // fuzzer crawl); the refCnt checks here are exact instead.
        ByteBuf cumulation = Unpooled.wrappedBuffer(new byte[Math.max(1, total)]).clear();
        ChunkedBodyDecoder decoder = new ChunkedBodyDecoder(MAX_TRAILER);
        List<ByteBuf> parts = new ArrayList<>();
        // The sink takes each piece of chunk data out of the cumulation itself.
        ChunkedBodyDecoder.Sink sink = (in, length) -> {
            assertTrue(length > 0, "an empty part");
            parts.add(in.readRetainedSlice(length));
        };
        List<String> outcome = new ArrayList<>();
        try {
            for (byte[] read : reads) {
                cumulation.writeBytes(read);
                while (outcome.size() < MAX_BODIES && cumulation.isReadable()) {
                    boolean done;
                    try {
                        done = decoder.decode(cumulation, sink);
                    } catch (BadRequest e) {
                        outcome.add("refused " + e.status.code() + " " + e.code + " after " + hex(parts));
                        return outcome;
                    }
                    if (!done) {
                        assertTrue(cumulation.readableBytes() <= MAX_SIZE_LINE,
                                "a body in progress leaves " + cumulation.readableBytes() + " bytes unread");
                        break;
                    }
                    outcome.add("body " + hex(parts) + " @" + cumulation.readerIndex());
                }
                if (outcome.size() == MAX_BODIES) {
                    return outcome;
                }
            }
            outcome.add("waiting @" + cumulation.readerIndex() + " after " + hex(parts));
            return outcome;
        } finally {
            hex(parts);
            assertEquals(1, cumulation.refCnt(), "every part released, nothing else retained");
            cumulation.release();
        }
    }

    /** The parts received so far as hex; releases them. */
    private static String hex(List<ByteBuf> parts) {
        StringBuilder b = new StringBuilder();
        for (ByteBuf p : parts) {
            b.append(ByteBufUtil.hexDump(p));
            p.release();
        }
        parts.clear();
        return b.toString();
    }

    // ---- the reference ----

    private enum Kind { VALID, INVALID, INCOMPLETE }

    private record Ref(Kind kind, byte[] body, int end, boolean pastLimits) {
    }

    private static void checkAgainstReference(byte[] wire, List<String> outcome) {
        int at = 0;
        for (String o : outcome) {
            Ref ref = reference(wire, at);
            switch (ref.kind) {
                case VALID -> {
                    String expected = "body " + HexFormat.of().formatHex(ref.body) + " @" + ref.end;
                    if (ref.pastLimits) {
                        if (!o.startsWith("refused") && !o.equals(expected)) {
                            fail("body past the limits: expected a limit refusal, got " + o);
                        }
                        if (o.startsWith("refused")) {
                            assertLimitRefusal(o);
                            return;
                        }
                    } else {
                        assertEquals(expected, o, "a valid body from " + at);
                    }
                    at = ref.end;
                }
                case INVALID -> {
                    if (!o.startsWith("refused")) {
                        fail("an invalid body from " + at + " was not refused: " + o);
                    }
                    return;
                }
                case INCOMPLETE -> {
                    if (o.startsWith("refused")) {
                        assertLimitRefusal(o);
                    } else if (!o.startsWith("waiting")) {
                        fail("an incomplete body from " + at + " ended: " + o);
                    }
                    return;
                }
            }
        }
    }

    private static void assertLimitRefusal(String o) {
        if (o.contains("malformed_http")) {
            fail("a well-formed (if unfinished or oversized) body was refused as malformed: " + o);
        }
    }

    /**
     * One chunked body read from {@code w} at {@code p} the plain way, RFC 9112 §7.1 as this proxy
     * reads it: a bare LF ends a line as well as CR LF, a size may be followed by blanks or
     * extensions (no control bytes but HTAB in them), trailer lines are skipped up to the empty
     * line. No limits are applied; {@code pastLimits} says whether one was passed.
     */
    private static Ref reference(byte[] w, int p) {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        boolean pastLimits = false;
        while (true) {
            int lf = indexOf(w, p, (byte) '\n');
            if (lf < 0) {
                return new Ref(Kind.INCOMPLETE, null, -1, false);
            }
            pastLimits |= lf - p > MAX_SIZE_LINE;
            int d = p;
            long size = 0;
            while (d < lf && Character.digit(w[d], 16) >= 0) {
                if (size >= 1L << 40) {
                    // Far past anything an input can carry; the decoder refuses at 2^56.
                    pastLimits = true;
                } else {
                    size = size << 4 | Character.digit(w[d], 16);
                }
                d++;
            }
            if (d == p || !restOfSizeLineIsValid(w, d, lf)) {
                return new Ref(Kind.INVALID, null, -1, false);
            }
            p = lf + 1;
            if (pastLimits && size >= 1L << 40) {
                return new Ref(Kind.INCOMPLETE, null, -1, true);
            }
            if (size == 0) {
                int trailer = 0;
                while (true) {
                    int t = indexOf(w, p, (byte) '\n');
                    if (t < 0) {
                        return new Ref(Kind.INCOMPLETE, null, -1, false);
                    }
                    int length = t - p;
                    boolean empty = length == 0 || (length == 1 && w[p] == '\r');
                    p = t + 1;
                    if (empty) {
                        return new Ref(Kind.VALID, body.toByteArray(), p, pastLimits || trailer > MAX_TRAILER);
                    }
                    trailer += length + 1;
                }
            }
            if (w.length - p < size) {
                return new Ref(Kind.INCOMPLETE, null, -1, false);
            }
            body.write(w, p, (int) size);
            p += (int) size;
            if (p >= w.length) {
                return new Ref(Kind.INCOMPLETE, null, -1, false);
            }
            if (w[p] == '\n') {
                p++;
            } else if (w[p] == '\r') {
                if (p + 1 >= w.length) {
                    return new Ref(Kind.INCOMPLETE, null, -1, false);
                }
                if (w[p + 1] != '\n') {
                    return new Ref(Kind.INVALID, null, -1, false);
                }
                p += 2;
            } else {
                return new Ref(Kind.INVALID, null, -1, false);
            }
        }
    }

    /** After the size: nothing, a CR just before the LF, or blanks/extensions without control bytes. */
    private static boolean restOfSizeLineIsValid(byte[] w, int from, int lf) {
        if (from == lf || (from == lf - 1 && w[from] == '\r')) {
            return true;
        }
        byte first = w[from];
        if (first != ';' && first != ' ' && first != '\t') {
            return false;
        }
        for (int i = from; i < lf; i++) {
            int x = w[i] & 0xff;
            boolean lastCr = x == '\r' && i == lf - 1;
            if ((x < 0x20 && x != '\t' && !lastCr) || x == 0x7f) {
                return false;
            }
        }
        return true;
    }

    private static int indexOf(byte[] w, int from, byte b) {
        for (int i = from; i < w.length; i++) {
            if (w[i] == b) {
                return i;
            }
        }
        return -1;
    }
}
