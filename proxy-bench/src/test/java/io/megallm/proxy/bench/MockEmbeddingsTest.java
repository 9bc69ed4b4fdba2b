package io.megallm.proxy.bench;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.TreeSet;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The embeddings bodies of the mock: exact size, OpenAI's shape, and the cache's reference counts. */
class MockEmbeddingsTest {

    /** How the API prints a component; the body's very last number may carry trailing zeros on top. */
    private static final Pattern NUMBER = Pattern.compile("-?0\\.\\d{10}");
    private static final Pattern LAST_NUMBER = Pattern.compile("-?0\\.\\d{10}0*");

    @Test
    void everyBodyIsExactlyTheAskedSizeAndShapedAsTheApisAnswer() throws IOException {
        TreeSet<Integer> vectorCounts = new TreeSet<>();
        // Every size from the smallest up, and every size around the start of a second vector
        // (one whole vector is ~20.8 KB), where the most bytes are left over for the last number.
        for (int size = MockEmbeddings.MIN_BYTES; size < MockEmbeddings.MIN_BYTES + 200; size++) {
            vectorCounts.add(checkedVectors(size));
        }
        for (int size = 20_000; size < 22_000; size++) {
            vectorCounts.add(checkedVectors(size));
        }
        assertTrue(vectorCounts.containsAll(java.util.List.of(1, 2)), "the sizes crossed a vector's end: " + vectorCounts);
        // A size of the quick run: as many whole vectors as fit, ~20.8 KB each.
        int vectors = checkedVectors(4 * 1024 * 1024 + 7);
        assertTrue(vectors > 190 && vectors < 215, vectors + " vectors in 4 MiB");
    }

    @Test
    void theUsageComesLastWhereTheProxyLooksForIt() {
        String body = new String(MockEmbeddings.body(MockEmbeddings.DEFAULT_BYTES), StandardCharsets.US_ASCII);
        assertTrue(body.startsWith("{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,\"embedding\":["),
                body.substring(0, 100));
        assertTrue(body.endsWith("]}],\"model\":\"text-embedding-3-small\","
                        + "\"usage\":{\"prompt_tokens\":8,\"total_tokens\":8}}"),
                body.substring(body.length() - 100));
    }

    @Test
    void sizesOutsideTheBoundAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> MockEmbeddings.body(MockEmbeddings.MIN_BYTES - 1));
        assertThrows(IllegalArgumentException.class, () -> MockEmbeddings.body(MockEmbeddings.MAX_BYTES + 1));
    }

    @Test
    void answersShareOneBodyPerSizeAndEveryReferenceIsReleased() {
        MockEmbeddings m = new MockEmbeddings();
        ByteBuf first = m.answer(2048);
        ByteBuf second = m.answer(2048);
        // One body: the cache's reference and both answers' count on the same buffer.
        assertEquals(3, first.refCnt());
        assertTrue(first.isReadOnly());
        assertArrayEquals(MockEmbeddings.body(2048), ByteBufUtil.getBytes(second));
        second.release();

        // Three more sizes push 2048 out of the cache; the answer still being written keeps it readable.
        ByteBuf[] others = {m.answer(3000), m.answer(4000), m.answer(5000)};
        assertEquals(1, first.refCnt());
        assertArrayEquals(MockEmbeddings.body(2048), ByteBufUtil.getBytes(first));
        first.release();
        assertEquals(0, first.refCnt());

        m.release();
        for (ByteBuf b : others) {
            assertEquals(1, b.refCnt(), "only the answer's own reference is left");
            b.release();
            assertEquals(0, b.refCnt());
        }
        assertThrows(IllegalStateException.class, () -> m.answer(2048));
    }

    /** Parses a body of {@code size} bytes as OpenAI's embeddings list; returns its vector count. */
    static int checkedVectors(int size) throws IOException {
        byte[] body = MockEmbeddings.body(size);
        assertEquals(size, body.length);
        return checkShape(body, "size " + size);
    }

    /**
     * {"object":"list","data":[{"object":"embedding","index":i,"embedding":[numbers]},...],
     * "model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}} and nothing
     * else: every vector but the last has 1,536 numbers, the last at least one.
     */
    static int checkShape(byte[] body, String what) throws IOException {
        try (JsonParser p = new JsonFactory().createParser(body)) {
            next(p, JsonToken.START_OBJECT, what);
            field(p, "object", what);
            next(p, JsonToken.VALUE_STRING, what);
            assertEquals("list", p.getText(), what);
            field(p, "data", what);
            next(p, JsonToken.START_ARRAY, what);
            int vectors = 0;
            int lastLength = MockEmbeddings.DIMENSIONS;
            String lastNumber = null;
            while (p.nextToken() == JsonToken.START_OBJECT) {
                assertEquals(MockEmbeddings.DIMENSIONS, lastLength, what + ": only the last vector is short");
                field(p, "object", what);
                next(p, JsonToken.VALUE_STRING, what);
                assertEquals("embedding", p.getText(), what);
                field(p, "index", what);
                next(p, JsonToken.VALUE_NUMBER_INT, what);
                assertEquals(vectors, p.getIntValue(), what);
                field(p, "embedding", what);
                next(p, JsonToken.START_ARRAY, what);
                lastLength = 0;
                while (p.nextToken() == JsonToken.VALUE_NUMBER_FLOAT) {
                    if (lastNumber != null) {
                        assertTrue(NUMBER.matcher(lastNumber).matches(), what + ": " + lastNumber);
                    }
                    lastNumber = p.getText();
                    assertTrue(Math.abs(p.getDoubleValue()) < 1, what + ": " + lastNumber);
                    lastLength++;
                }
                assertEquals(JsonToken.END_ARRAY, p.currentToken(), what);
                assertTrue(lastLength >= 1 && lastLength <= MockEmbeddings.DIMENSIONS, what + ": " + lastLength);
                next(p, JsonToken.END_OBJECT, what);
                vectors++;
            }
            assertTrue(vectors >= 1, what);
            assertTrue(LAST_NUMBER.matcher(lastNumber).matches(), what + ": " + lastNumber);
            assertEquals(JsonToken.END_ARRAY, p.currentToken(), what);
            field(p, "model", what);
            next(p, JsonToken.VALUE_STRING, what);
            assertEquals("text-embedding-3-small", p.getText(), what);
            field(p, "usage", what);
            next(p, JsonToken.START_OBJECT, what);
            field(p, "prompt_tokens", what);
            next(p, JsonToken.VALUE_NUMBER_INT, what);
            assertEquals(8, p.getIntValue(), what);
            field(p, "total_tokens", what);
            next(p, JsonToken.VALUE_NUMBER_INT, what);
            assertEquals(8, p.getIntValue(), what);
            next(p, JsonToken.END_OBJECT, what);
            next(p, JsonToken.END_OBJECT, what);
            assertNull(p.nextToken(), what + ": nothing after the object");
            return vectors;
        }
    }

    private static void next(JsonParser p, JsonToken expected, String what) throws IOException {
        assertEquals(expected, p.nextToken(), what);
    }

    private static void field(JsonParser p, String name, String what) throws IOException {
        next(p, JsonToken.FIELD_NAME, what);
        assertEquals(name, p.currentName(), what);
    }
}
