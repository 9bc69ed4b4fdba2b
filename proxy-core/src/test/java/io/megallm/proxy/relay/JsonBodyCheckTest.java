package io.megallm.proxy.relay;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class JsonBodyCheckTest {

    private final List<ByteBuf> created = new ArrayList<>();

    @AfterEach
    void releaseAll() {
        for (ByteBuf b : created) {
            if (b.refCnt() > 0) {
                b.release(b.refCnt());
            }
        }
    }

    private ByteBuf buf(String text) {
        ByteBuf b = PooledByteBufAllocator.DEFAULT.directBuffer();
        b.writeCharSequence(text, StandardCharsets.UTF_8);
        created.add(b);
        return b;
    }

    private JsonBodyCheck.Result check(String text) {
        ByteBuf b = buf(text);
        int reader = b.readerIndex();
        int writer = b.writerIndex();
        JsonBodyCheck.Result r = JsonBodyCheck.check(b);
        assertEquals(reader, b.readerIndex(), "the check must not consume the body");
        assertEquals(writer, b.writerIndex());
        assertEquals(1, b.refCnt(), "the check must not retain or release the body");
        return r;
    }

    @Test
    void validObjectGivesModelAndStream() {
        JsonBodyCheck.Result r = check(
                "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true}");

        assertNull(r.error());
        assertEquals("gpt-4o", r.model());
        assertTrue(r.stream());
    }

    @Test
    void streamFalseAndMissingFields() {
        JsonBodyCheck.Result r = check("{\"stream\":false,\"model\":\"m\"}");
        assertNull(r.error());
        assertEquals("m", r.model());
        assertFalse(r.stream());

        JsonBodyCheck.Result empty = check("{}");
        assertNull(empty.error());
        assertNull(empty.model());
        assertFalse(empty.stream());
    }

    @Test
    void nestedFieldsWithTheSameNamesAreNotTakenForTopLevelOnes() {
        JsonBodyCheck.Result r = check(
                "{\"messages\":[{\"model\":\"inner\",\"stream\":true}],\"meta\":{\"model\":\"x\"},\"model\":\"outer\"}");

        assertNull(r.error());
        assertEquals("outer", r.model());
        assertFalse(r.stream());
    }

    @Test
    void aModelOfTheWrongTypeIsIgnored() {
        JsonBodyCheck.Result r = check("{\"model\":5,\"stream\":false}");

        assertNull(r.error());
        assertNull(r.model());
    }

    /** Review (2026-12-07): the check read the last string model, the upstream reads the last model. */
    @Test
    void theLastModelWinsWhateverItsType() {
        assertNull(check("{\"model\":\"allowed\",\"model\":null}").model());
        assertNull(check("{\"model\":\"allowed\",\"model\":{\"name\":\"other\"}}").model());
        assertEquals("other", check("{\"model\":\"allowed\",\"model\":\"other\"}").model());
        assertEquals("allowed", check("{\"model\":null,\"model\":\"allowed\",\"n\":[1,{\"model\":\"x\"}]}").model());
    }

    @Test
    void streamIsAnyValueButFalseOrNull() {
        // An upstream with a lax bool (pydantic: 1, "true", "yes") or JavaScript's truthiness streams these.
        for (String value : new String[] {"1", "\"true\"", "\"yes\"", "\"false\"", "0", "{}", "[false]", "2.5"}) {
            JsonBodyCheck.Result r = check("{\"model\":\"m\",\"stream\":" + value + ",\"n\":1}");
            assertNull(r.error(), value);
            assertTrue(r.stream(), value);
            assertEquals("m", r.model(), value);
        }
        assertFalse(check("{\"stream\":null}").stream());
        assertFalse(check("{\"stream\":false}").stream());
        assertFalse(check("{\"stream\":true,\"stream\":false}").stream(), "the last one wins");
        assertTrue(check("{\"stream\":{\"a\":[1,{}]},\"model\":\"after\"}").stream());
        assertEquals("after", check("{\"stream\":{\"model\":\"inner\"},\"model\":\"after\"}").model());
    }

    @Test
    void nonObjectJsonIsValid() {
        assertNull(check("[1,2,{\"a\":[]}]").error());
        assertNull(check("42").error());
        assertNull(check("\"text\"").error());
    }

    @Test
    void surroundingWhiteSpaceIsFine() {
        JsonBodyCheck.Result r = check("  \r\n {\"model\":\"m\"} \n\t ");

        assertNull(r.error());
        assertEquals("m", r.model());
    }

    @Test
    void malformedJsonIsAnError() {
        assertNotNull(check("{\"model\":").error());
        assertNotNull(check("{\"model\":\"m\"").error());
        assertNotNull(check("{\"model\":\"m\",}").error());
        assertNotNull(check("{model:\"m\"}").error());
        assertNotNull(check("{'model':'m'}").error());
        assertNotNull(check("[1,2").error());
        assertNotNull(check("nope").error());
        assertNotNull(check("{\"a\":\"unterminated}").error());
    }

    @Test
    void errorCarriesNoModelOrStream() {
        JsonBodyCheck.Result r = check("{\"model\":\"m\",\"stream\":true,");

        assertNotNull(r.error());
        assertNull(r.model());
        assertFalse(r.stream());
    }

    @Test
    void trailingGarbageAfterTheValueIsAnError() {
        assertNotNull(check("{\"model\":\"m\"} x").error());
        assertNotNull(check("{\"model\":\"m\"}{\"model\":\"n\"}").error());
        assertNotNull(check("{} []").error());
        assertNotNull(check("{}}").error());
        assertNotNull(check("42 43").error());
    }

    @Test
    void emptyBodyIsAnError() {
        assertNotNull(check("").error());
        assertNotNull(check("   \n ").error());
        assertNotNull(JsonBodyCheck.check(Unpooled.EMPTY_BUFFER).error());
    }

    @Test
    void compositeOfSmallBuffersParses() {
        String json = "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"h\u00e9llo \u2603\"}],"
                + "\"stream\":true,\"temperature\":0.5}";
        byte[] bytes = json.getBytes(StandardCharsets.UTF_8);
        CompositeByteBuf composite = ByteBufAllocator.DEFAULT.compositeBuffer(Integer.MAX_VALUE);
        created.add(composite);
        // 3-byte pieces: field names, strings and the multi-byte characters are all split.
        for (int i = 0; i < bytes.length; i += 3) {
            ByteBuf piece = PooledByteBufAllocator.DEFAULT.directBuffer(3);
            piece.writeBytes(bytes, i, Math.min(3, bytes.length - i));
            composite.addComponent(true, piece);
        }
        assertTrue(composite.numComponents() > 10);
        composite.skipBytes(0);
        int reader = composite.readerIndex();

        JsonBodyCheck.Result r = JsonBodyCheck.check(composite);

        assertNull(r.error());
        assertEquals("gpt-4o-mini", r.model());
        assertTrue(r.stream());
        assertEquals(reader, composite.readerIndex());
        assertEquals(bytes.length, composite.readableBytes());
        assertEquals(1, composite.refCnt());
    }

    @Test
    void onlyTheReadableBytesAreChecked() {
        ByteBuf b = buf("garbage{\"model\":\"m\"}");
        b.readerIndex("garbage".length());

        JsonBodyCheck.Result r = JsonBodyCheck.check(b);

        assertNull(r.error());
        assertEquals("m", r.model());
        assertEquals("garbage".length(), b.readerIndex());
    }

    @Test
    void aHeapBodyIsReadFromItsReaderIndex() {
        ByteBuf b = Unpooled.wrappedBuffer("xx{\"model\":\"h\",\"stream\":true}".getBytes(StandardCharsets.UTF_8));
        created.add(b);
        b.readerIndex(2);

        JsonBodyCheck.Result r = JsonBodyCheck.check(b);

        assertNull(r.error());
        assertEquals("h", r.model());
        assertTrue(r.stream());
        assertEquals(2, b.readerIndex());
    }

    @Test
    void bodiesLargerThanTheScratchArrayAreStreamed() {
        String big = "{\"messages\":[{\"content\":\"" + "a".repeat(200_000) + "\"}],\"model\":\"big\"}";
        JsonBodyCheck.Result r = check(big);
        assertNull(r.error());
        assertEquals("big", r.model());
        assertTrue(check(big.substring(0, big.length() - 1)).error().startsWith("The request body is not valid JSON"));
    }

    @Test
    void aShortBodyAfterALongerOneSeesOnlyItsOwnBytes() {
        assertNull(check("{\"model\":\"first\",\"messages\":[{\"content\":\"" + "b".repeat(30_000) + "\"}]}").error());

        JsonBodyCheck.Result r = check("{\"model\":\"m\"}");

        assertNull(r.error());
        assertEquals("m", r.model());
        assertTrue(check("{\"model\":").error().startsWith("The request body is not valid JSON"));
    }

    /** Audit: "[1,2" answered "…[Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled)…". */
    @ParameterizedTest
    @ValueSource(strings = {"[1,2", "{\"model\":", "{\"a\":tru}", "{\"a\" 1}", "\"open", "{\n\"m\":[}"})
    void aParseErrorSaysWhatAndWhereWithoutTheParsersInternals(String body) {
        String error = check(body).error();
        assertTrue(error.startsWith("The request body is not valid JSON: "), error);
        assertFalse(error.contains("Source"), error);
        assertFalse(error.contains("StreamReadFeature"), error);
        assertFalse(error.contains("REDACTED"), error);
        assertFalse(error.contains("\n"), error);
        assertTrue(error.matches(".*\\(line \\d+, column \\d+\\)"), error);
    }

    @Test
    void malformedBodyLeavesReaderIndexUnchanged() {
        check("{\"model\":\"m\",]");
        check("{\"model\":\"m\"} trailing");
    }

    @Test
    void appliesToJsonContentTypes() {
        ByteBuf body = buf("{}");
        assertTrue(JsonBodyCheck.appliesTo("application/json", body));
        assertTrue(JsonBodyCheck.appliesTo("application/json; charset=utf-8", body));
        assertTrue(JsonBodyCheck.appliesTo("Application/JSON", body));
        assertTrue(JsonBodyCheck.appliesTo("application/vnd.api+json", body));
        assertFalse(JsonBodyCheck.appliesTo("application/json", Unpooled.EMPTY_BUFFER),
                "an empty body is not checked: SDKs send a JSON content type on GETs too");
    }

    @Test
    void doesNotApplyToOtherContentTypes() {
        ByteBuf body = buf("not json");
        assertFalse(JsonBodyCheck.appliesTo("text/plain", body));
        assertFalse(JsonBodyCheck.appliesTo("multipart/form-data; boundary=x", body));
        assertFalse(JsonBodyCheck.appliesTo("application/octet-stream", body));
    }

    @Test
    void withoutContentTypeAppliesOnlyWhenThereIsABody() {
        assertTrue(JsonBodyCheck.appliesTo(null, buf("{}")));
        assertFalse(JsonBodyCheck.appliesTo(null, Unpooled.EMPTY_BUFFER));
    }

    // ---- affinity (contract §7): the top-level prompt_cache_key, else user, as a hash ----

    @Test
    void promptCacheKeyGivesTheSameNonZeroHashEveryTime() {
        long a = check("{\"model\":\"m\",\"prompt_cache_key\":\"conv-42\"}").affinity();
        long b = check("{\"prompt_cache_key\":\"conv-42\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}").affinity();
        assertTrue(a != 0);
        assertEquals(a, b);
        assertTrue(a != check("{\"prompt_cache_key\":\"conv-43\"}").affinity());
    }

    @Test
    void promptCacheKeyWinsOverUserWhicheverComesFirst() {
        long cacheKey = check("{\"prompt_cache_key\":\"p\"}").affinity();
        assertEquals(cacheKey, check("{\"user\":\"u\",\"prompt_cache_key\":\"p\"}").affinity());
        assertEquals(cacheKey, check("{\"prompt_cache_key\":\"p\",\"user\":\"u\"}").affinity());
    }

    @Test
    void userIsTheFallback() {
        long user = check("{\"user\":\"alice\"}").affinity();
        assertTrue(user != 0);
        assertEquals(user, check("{\"model\":\"m\",\"user\":\"alice\"}").affinity());
    }

    @Test
    void nestedOrNonStringValuesGiveNoAffinity() {
        assertEquals(0, check("{\"model\":\"m\"}").affinity());
        assertEquals(0, check("{\"metadata\":{\"prompt_cache_key\":\"p\",\"user\":\"u\"}}").affinity());
        assertEquals(0, check("{\"user\":5,\"prompt_cache_key\":null}").affinity());
        assertEquals(0, check("[{\"user\":\"u\"}]").affinity());
    }

    @Test
    void escapedAndPlainFormsOfOneValueHashAlike() {
        assertEquals(check("{\"user\":\"ab\"}").affinity(), check("{\"user\":\"a\\u0062\"}").affinity());
    }
}
