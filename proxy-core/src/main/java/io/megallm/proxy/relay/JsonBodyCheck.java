package io.megallm.proxy.relay;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufInputStream;
import io.netty.util.concurrent.FastThreadLocal;

import java.io.IOException;
import java.io.InputStream;

/**
 * Checks a JSON request body with the streaming parser before any key is spent on it, and
 * notes the two fields the logs and the client limits want ({@code model}, {@code stream}: any
 * value but {@code false} or {@code null}). The bytes are only read.
 */
public final class JsonBodyCheck {

    private static final JsonFactory FACTORY = JsonFactory.builder()
            .streamReadConstraints(StreamReadConstraints.builder()
                    .maxStringLength(Integer.MAX_VALUE)
                    .maxNestingDepth(1000)
                    .build())
            .build();

    private static final int SCRATCH_SIZE = 64 * 1024;
    private static final FastThreadLocal<byte[]> SCRATCH = new FastThreadLocal<>() {
        @Override
        protected byte[] initialValue() {
            return new byte[SCRATCH_SIZE];
        }
    };

    /**
     * Outcome of a check: {@code error} is null when the body is fine. {@code affinity} is a
     * 64-bit hash of the top-level {@code prompt_cache_key} (else {@code user}) string, 0 when
     * the body has neither: it is all key selection needs, and the value itself is never kept.
     */
    public record Result(String error, String model, boolean stream, long affinity, boolean usageAsked) {
        static final Result NOT_JSON = new Result(null, null, false, 0L, false);

        Result(String error, String model, boolean stream) {
            this(error, model, stream, 0L, false);
        }
    }

    private JsonBodyCheck() {
    }

    /**
     * True when there is a body and the request says it is JSON, or says nothing. An empty body
     * is not checked: SDKs send {@code Content-Type: application/json} on GETs too.
     */
    /** {@code type}: the request's Content-Type, null without one. */
    public static boolean appliesTo(String type, ByteBuf body) {
        if (!body.isReadable()) {
            return false;
        }
        return type == null || containsJson(type);
    }

    /** "json" anywhere in {@code type}, ASCII case ignored, without a lower-cased copy per request. */
    private static boolean containsJson(String type) {
        for (int i = 0, last = type.length() - 4; i <= last; i++) {
            if (type.regionMatches(true, i, "json", 0, 4)) {
                return true;
            }
        }
        return false;
    }

    public static Result check(ByteBuf body) {
        if (!body.isReadable()) {
            return new Result("The request body is empty; a JSON body was expected.", null, false);
        }
        // Two readings: names as written (Python, Node) and names in any case, the last match
        // winning (Go's encoding/json, ASP.NET's web defaults). The limits take the stricter one.
        String model = null;
        String anyCaseModel = null;
        boolean stream = false;
        boolean anyCaseStream = false;
        long cacheKey = 0;
        long user = 0;
        boolean usageAsked = false;
        boolean anyCaseUsageAsked = false;
        try (JsonParser p = parser(body)) {
            JsonToken root = p.nextToken();
            if (root == null) {
                return new Result("The request body is empty; a JSON body was expected.", null, false);
            }
            if (root == JsonToken.START_OBJECT) {
                JsonToken t;
                while ((t = p.nextToken()) != JsonToken.END_OBJECT) {
                    String field = p.currentName();
                    t = p.nextToken();
                    if ("model".equalsIgnoreCase(field)) {
                        // The last one wins, as in the upstream's parser: {"model":"allowed","model":null}
                        // passed a client's allow-list as "allowed" while the upstream read null
                        // (and one that falls back to its default model served that).
                        anyCaseModel = t == JsonToken.VALUE_STRING ? p.getText() : null;
                        if ("model".equals(field)) {
                            model = anyCaseModel;
                        }
                        p.skipChildren();
                    } else if ("stream".equalsIgnoreCase(field)) {
                        // A stream unless false or null: upstreams read 1, "true", "yes" as true
                        // (pydantic's lax bool, JavaScript's truthiness), and max_streams must count
                        // what the upstream will stream; a value no upstream streams costs at worst
                        // a 429 to a client already at its limit. The last one wins, as in parsers.
                        anyCaseStream = t != JsonToken.VALUE_FALSE && t != JsonToken.VALUE_NULL;
                        if ("stream".equals(field)) {
                            stream = anyCaseStream;
                        }
                        p.skipChildren();
                    } else if ("stream_options".equalsIgnoreCase(field)) {
                        // The last one wins, as in the upstream's parser: a later null must not
                        // leave an earlier {"include_usage":true} standing.
                        int asked = t == JsonToken.START_OBJECT ? includeUsage(p) : 0;
                        anyCaseUsageAsked = (asked & ANY_CASE) != 0;
                        if ("stream_options".equals(field)) {
                            usageAsked = (asked & AS_WRITTEN) != 0;
                        }
                        p.skipChildren();
                    } else if ("prompt_cache_key".equals(field) && t == JsonToken.VALUE_STRING) {
                        cacheKey = hashText(p);
                    } else if ("user".equals(field) && t == JsonToken.VALUE_STRING) {
                        user = hashText(p);
                    } else {
                        p.skipChildren();
                    }
                }
            } else {
                p.skipChildren();
            }
            if (p.nextToken() != null) {
                return new Result("The request body has data after the JSON value.", null, false);
            }
        } catch (IOException e) {
            return new Result("The request body is not valid JSON: " + describe(e), null, false);
        }
        // Where the readings differ the model is not known (an allow-list refuses it); a stream in
        // either is a stream, and its usage is asked only if both ask.
        return new Result(null, java.util.Objects.equals(model, anyCaseModel) ? model : null, stream || anyCaseStream,
                cacheKey != 0 ? cacheKey : user, usageAsked && anyCaseUsageAsked);
    }

    private static final int AS_WRITTEN = 1;
    private static final int ANY_CASE = 2;

    /**
     * Reads a {@code stream_options} object to its end: {@link #AS_WRITTEN} and/or {@link #ANY_CASE}
     * set when its {@code include_usage}, in that reading of its name, is {@code true}.
     */
    private static int includeUsage(JsonParser p) throws IOException {
        boolean asked = false;
        boolean anyCase = false;
        while (p.nextToken() != JsonToken.END_OBJECT) {
            String field = p.currentName();
            JsonToken t = p.nextToken();
            if ("include_usage".equalsIgnoreCase(field)) {
                anyCase = t == JsonToken.VALUE_TRUE;
                if ("include_usage".equals(field)) {
                    asked = anyCase;
                }
            }
            p.skipChildren();
        }
        return (asked ? AS_WRITTEN : 0) | (anyCase ? ANY_CASE : 0);
    }

    /**
     * FNV-1a over the string's characters, read from the parser's own buffer (no String made),
     * then mixed so that near-equal values land far apart. Never 0: 0 means "no value".
     */
    private static long hashText(JsonParser p) throws IOException {
        char[] chars = p.getTextCharacters();
        int from = p.getTextOffset();
        int to = from + p.getTextLength();
        long h = 0xcbf29ce484222325L;
        for (int i = from; i < to; i++) {
            h = (h ^ chars[i]) * 0x100000001b3L;
        }
        h ^= h >>> 33;
        h *= 0xff51afd7ed558ccdL;
        h ^= h >>> 33;
        return h == 0 ? 1 : h;
    }

    /**
     * A parser over the body's bytes. Jackson parses a byte array in place; a body up to
     * {@value #SCRATCH_SIZE} bytes in native memory is copied into the thread's scratch array once
     * instead of being pulled through an InputStream into Jackson's own buffer.
     */
    private static JsonParser parser(ByteBuf body) throws IOException {
        int n = body.readableBytes();
        if (body.hasArray()) {
            return FACTORY.createParser(body.array(), body.arrayOffset() + body.readerIndex(), n);
        }
        if (n <= SCRATCH_SIZE) {
            byte[] scratch = SCRATCH.get();
            body.getBytes(body.readerIndex(), scratch, 0, n);
            return FACTORY.createParser(scratch, 0, n);
        }
        return FACTORY.createParser((InputStream) new ByteBufInputStream(body.duplicate(), false));
    }

    /**
     * Jackson's own words for what is wrong, and where, without the parts that describe Jackson
     * (its "[Source: REDACTED (`StreamReadFeature…` disabled)" and start-marker locations).
     */
    static String describe(IOException e) {
        String message = e instanceof com.fasterxml.jackson.core.JsonProcessingException j ? j.getOriginalMessage()
                : e.getMessage();
        if (message == null) {
            return "parse error";
        }
        for (String cut : new String[] {"\n", " (start marker at", "[Source:"}) {
            int at = message.indexOf(cut);
            if (at >= 0) {
                message = message.substring(0, at);
            }
        }
        message = message.strip();
        if (message.length() > 200) {
            message = message.substring(0, 200);
        }
        if (e instanceof com.fasterxml.jackson.core.JsonProcessingException j && j.getLocation() != null
                && j.getLocation().getLineNr() > 0) {
            message = message + " (line " + j.getLocation().getLineNr() + ", column " + j.getLocation().getColumnNr() + ")";
        }
        return message.isEmpty() ? "parse error" : message;
    }
}
