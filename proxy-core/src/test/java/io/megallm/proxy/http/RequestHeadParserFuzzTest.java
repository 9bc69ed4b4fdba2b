package io.megallm.proxy.http;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.megallm.proxy.testing.FuzzInput;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Coverage-guided fuzzing of {@link RequestHeadParser} (see the README's "Fuzzing"). In a plain
 * {@code mvn verify} this replays the seeds in {@code RequestHeadParserFuzzTestInputs/heads/};
 * with {@code JAZZER_FUZZ=1} Jazzer mutates them. For every input:
 *
 * <ul>
 *   <li>the parser throws nothing but {@link BadRequest} (anything else is a finding);</li>
 *   <li>the heads it reads, and where it stops, are the same whether the bytes come whole, in two
 *       reads cut where the fuzzer chose, or in many reads of a fuzzer-chosen size: it is
 *       incremental and must not depend on how the socket delivered the bytes;</li>
 *   <li>what it accepts obeys the rules a proxy relies on: names are tokens, values carry no
 *       CR, LF or NUL, never both a length and chunked;</li>
 *   <li>while it waits for more of a head, the bytes it leaves unread stay within its limits
 *       (small limits here, so that inputs of a few hundred bytes reach them);</li>
 *   <li>it keeps no reference to the buffer: its refCnt is 1 after every read.</li>
 * </ul>
 */
class RequestHeadParserFuzzTest {

    private static final int MAX_LINE = 128;
    private static final int MAX_SECTION = 512;
    /** The most a head in progress may leave unread: both limits, and the line ends around them. */
    private static final int MAX_UNREAD = MAX_LINE + MAX_SECTION + 8;
    /** A connection would be refused long before this many heads; enough to reach pipelined ones. */
    private static final int MAX_HEADS = 16;

    @FuzzTest
    void heads(byte[] data) {
        FuzzInput input = FuzzInput.of(data);
        List<List<byte[]>> feedings = input.feedings();
        List<String> whole = outcome(feedings.get(0));
        for (List<byte[]> reads : feedings.subList(1, feedings.size())) {
            assertEquals(whole, outcome(reads), FuzzInput.describe(reads));
        }
    }

    /** The heads read from {@code reads}, each as text, and how the parsing stopped. */
    private static List<String> outcome(List<byte[]> reads) {
        int total = 0;
        for (byte[] r : reads) {
            total += r.length;
        }
        // Not leak-tracked (a wrapped array): paranoid tracking on every getByte would make the
        // fuzzer crawl, and the refCnt check below is exact for a parser that holds no buffers.
        ByteBuf cumulation = Unpooled.wrappedBuffer(new byte[Math.max(1, total)]).clear();
        RequestHeadParser parser = new RequestHeadParser(MAX_LINE, MAX_SECTION);
        List<String> heads = new ArrayList<>();
        try {
            for (byte[] read : reads) {
                cumulation.writeBytes(read);
                while (true) {
                    RequestHead head;
                    try {
                        head = parser.parse(cumulation);
                    } catch (BadRequest e) {
                        assertFalse(e.getMessage() == null || e.getMessage().isBlank(), "a refusal says why");
                        heads.add("refused " + e.status.code() + " " + e.code);
                        return heads;
                    }
                    assertEquals(1, cumulation.refCnt(), "the parser retains nothing");
                    if (head == null) {
                        assertTrue(cumulation.readableBytes() <= MAX_UNREAD,
                                "a head in progress is within the limits: " + cumulation.readableBytes() + " bytes unread");
                        break;
                    }
                    heads.add(describe(head) + " @" + cumulation.readerIndex());
                    if (heads.size() == MAX_HEADS || !cumulation.isReadable()) {
                        break;
                    }
                }
                if (heads.size() == MAX_HEADS) {
                    break;
                }
            }
            heads.add("waiting @" + cumulation.readerIndex());
            return heads;
        } finally {
            assertTrue(cumulation.release());
        }
    }

    private static String describe(RequestHead head) {
        checkInvariants(head);
        StringBuilder b = new StringBuilder()
                .append(head.method().name()).append(' ').append(head.uri()).append(' ').append(head.version().text())
                .append(" keepAlive=").append(head.keepAlive())
                .append(" length=").append(head.contentLength())
                .append(" chunked=").append(head.chunked())
                .append(" continue=").append(head.expectContinue());
        RequestHeaders h = head.headers();
        for (int i = 0; i < h.size(); i++) {
            b.append(" | ").append(h.name(i)).append(": ").append(h.value(i));
        }
        return b.toString();
    }

    /** What the rest of the proxy takes for granted about a head the parser accepted. */
    private static void checkInvariants(RequestHead head) {
        String uri = head.uri();
        if (uri.isEmpty()) {
            fail("an empty request target");
        }
        for (int i = 0; i < uri.length(); i++) {
            char c = uri.charAt(i);
            if (c <= 0x20 || c == 0x7f) {
                fail("control or space in the target: " + uri);
            }
        }
        if (head.chunked() && head.contentLength() >= 0) {
            fail("both chunked and a Content-Length");
        }
        if (head.contentLength() < -1) {
            fail("a negative length " + head.contentLength());
        }
        RequestHeaders h = head.headers();
        for (int i = 0; i < h.size(); i++) {
            String name = h.name(i);
            if (name.isEmpty()) {
                fail("an empty header name");
            }
            for (int k = 0; k < name.length(); k++) {
                if (!HttpTokens.isTchar(name.charAt(k))) {
                    fail("a header name that is not a token: " + name);
                }
            }
            String value = h.value(i);
            for (int k = 0; k < value.length(); k++) {
                char c = value.charAt(k);
                if (c == '\r' || c == '\n' || c == 0) {
                    fail("CR, LF or NUL in the value of " + name);
                }
            }
            if (!value.isEmpty() && (isBlank(value.charAt(0)) || isBlank(value.charAt(value.length() - 1)))) {
                fail("untrimmed value of " + name);
            }
        }
    }

    private static boolean isBlank(char c) {
        return c == ' ' || c == '\t';
    }
}
