package io.megallm.proxy.bench;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.util.AsciiString;

import java.nio.charset.StandardCharsets;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/**
 * The mock's {@code /v1/embeddings} answers: an OpenAI embeddings list of whatever size the
 * caller asks for in {@code X-Mock-Answer-Bytes}, the shape of a batch embeddings call, megabytes
 * of JSON numbers with the usage at the end. The body is exactly the size asked for: vectors of
 * {@value #DIMENSIONS} numbers while whole ones fit, then a shorter last one, whose last number
 * takes the few bytes left as more digits (trailing zeros after its decimal point, same value).
 *
 * <p>Each size is built once and kept, a few sizes at a time; every answer is a retained
 * duplicate of it, so that answering costs the mock a write and no copy. A body dropped from the
 * cache stays valid for the answers still being written, which hold their own reference.
 */
final class MockEmbeddings {

    static final AsciiString X_MOCK_ANSWER_BYTES = AsciiString.cached("x-mock-answer-bytes");
    static final int DIMENSIONS = 1536;
    static final int MIN_BYTES = 1024;
    static final int MAX_BYTES = 64 * 1024 * 1024;
    static final int DEFAULT_BYTES = 1024 * 1024;
    /** A run asks for one size or two; more than a few 64-MiB bodies is more than a mock should hold. */
    static final int CACHED_SIZES = 3;

    static final String HEAD = "{\"object\":\"list\",\"data\":[";
    static final String TAIL = "],\"model\":\"text-embedding-3-small\",\"usage\":{\"prompt_tokens\":8,\"total_tokens\":8}}";
    private static final byte[] HEAD_BYTES = HEAD.getBytes(StandardCharsets.US_ASCII);
    private static final byte[] TAIL_BYTES = TAIL.getBytes(StandardCharsets.US_ASCII);
    private static final byte[] VECTOR_START = "{\"object\":\"embedding\",\"index\":".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] VECTOR_NUMBERS = ",\"embedding\":[".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] VECTOR_END = "]}".getBytes(StandardCharsets.US_ASCII);
    /** Components with this spread make vectors of about unit length, as the API's are. */
    private static final double SCALE = 1 / Math.sqrt(DIMENSIONS);

    private final Map<Integer, ByteBuf> bodies = new LinkedHashMap<>(8, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<Integer, ByteBuf> eldest) {
            if (size() <= CACHED_SIZES) {
                return false;
            }
            eldest.getValue().release();
            return true;
        }
    };
    private boolean released;

    /** The size a request asks for, within [{@value #MIN_BYTES}, {@value #MAX_BYTES}]. */
    static int requestedSize(HttpHeaders headers) {
        return (int) MockUpstreamServer.headerLong(headers, X_MOCK_ANSWER_BYTES, DEFAULT_BYTES, MIN_BYTES, MAX_BYTES);
    }

    /**
     * A read-only body of {@code size} bytes that the caller owns (release it, or hand it to a
     * write that does). Built on the first request of a size, on the calling event loop.
     */
    synchronized ByteBuf answer(int size) {
        if (released) {
            throw new IllegalStateException("the mock has stopped");
        }
        ByteBuf body = bodies.get(size);
        if (body == null) {
            // One copy into a direct buffer: every answer then goes to the socket from the same memory.
            body = Unpooled.directBuffer(size, size).writeBytes(body(size)).asReadOnly();
            bodies.put(size, body);
        }
        // Inside the lock, so that an eviction by another event loop cannot free it before the retain.
        return body.retainedDuplicate();
    }

    /** Drops every kept body (answers still being written keep theirs until they are written). */
    synchronized void release() {
        released = true;
        for (Iterator<ByteBuf> it = bodies.values().iterator(); it.hasNext(); ) {
            it.next().release();
            it.remove();
        }
    }

    /** An embeddings answer of exactly {@code size} bytes (deterministic: the same size gives the same bytes). */
    static byte[] body(int size) {
        if (size < MIN_BYTES || size > MAX_BYTES) {
            throw new IllegalArgumentException("size " + size + " outside [" + MIN_BYTES + ", " + MAX_BYTES + "]");
        }
        byte[] out = new byte[size];
        int end = size - TAIL_BYTES.length;
        int pos = put(out, 0, HEAD_BYTES);
        Random random = new Random(size);
        byte[] number = new byte[16];
        int index = 0;
        int inVector = 0;
        for (;;) {
            int n = number(random, number);
            if (index > 0 && inVector < DIMENSIONS) {
                // The open vector can always be closed: room for "]}" is kept after every number.
                if (pos + 1 + n + VECTOR_END.length > end) {
                    break;
                }
                out[pos++] = ',';
            } else {
                byte[] digits = Integer.toString(index).getBytes(StandardCharsets.US_ASCII);
                int open = (index > 0 ? VECTOR_END.length + 1 : 0) + VECTOR_START.length + digits.length
                        + VECTOR_NUMBERS.length;
                if (pos + open + n + VECTOR_END.length > end) {
                    break;
                }
                if (index > 0) {
                    pos = put(out, pos, VECTOR_END);
                    out[pos++] = ',';
                }
                pos = put(out, pos, VECTOR_START);
                pos = put(out, pos, digits);
                pos = put(out, pos, VECTOR_NUMBERS);
                index++;
                inVector = 0;
            }
            System.arraycopy(number, 0, out, pos, n);
            pos += n;
            inVector++;
        }
        // Fewer bytes are left than one more number (or one more vector's start) needs.
        while (pos < end - VECTOR_END.length) {
            out[pos++] = '0';
        }
        pos = put(out, pos, VECTOR_END);
        put(out, pos, TAIL_BYTES);
        return out;
    }

    /** One component as the API prints it, ten decimals: {@code 0.0123456789}, {@code -0.0234567891}. */
    private static int number(Random random, byte[] into) {
        double v = random.nextGaussian() * SCALE;
        long digits = Math.min(9_999_999_999L, Math.round(Math.abs(v) * 1e10));
        int i = 0;
        if (v < 0) {
            into[i++] = '-';
        }
        into[i++] = '0';
        into[i++] = '.';
        for (long unit = 1_000_000_000L; unit > 0; unit /= 10) {
            into[i++] = (byte) ('0' + digits / unit % 10);
        }
        return i;
    }

    private static int put(byte[] out, int pos, byte[] bytes) {
        System.arraycopy(bytes, 0, out, pos, bytes.length);
        return pos + bytes.length;
    }
}
