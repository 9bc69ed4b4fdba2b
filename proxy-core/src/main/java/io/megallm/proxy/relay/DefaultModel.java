package io.megallm.proxy.relay;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import io.megallm.proxy.http.JsonText;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufInputStream;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;

/**
 * {@code DEFAULT_MODEL} (contract §15): a JSON request to an endpoint that needs a model, whose
 * body names none, gets the configured one as its first field. Only then is a body rewritten;
 * every other body goes upstream byte for byte. It runs only for bodies the JSON check found
 * without a model, so its own parse is off the common path.
 */
final class DefaultModel {

    private static final JsonFactory FACTORY = new JsonFactory();

    private final byte[] field;

    /** {@code model}: the configured name, or null when DEFAULT_MODEL is unset. */
    static DefaultModel of(String model) {
        return model == null || model.isEmpty() ? null : new DefaultModel(model);
    }

    private DefaultModel(String model) {
        this.field = ("\"model\":" + JsonText.quote(model)).getBytes(StandardCharsets.UTF_8);
    }

    /** The endpoints whose requests name a model (the part after {@code /v1}, query excluded). */
    static boolean appliesTo(String rest) {
        int q = rest.indexOf('?');
        String path = q < 0 ? rest : rest.substring(0, q);
        return path.equals("/chat/completions") || path.equals("/completions") || path.equals("/embeddings");
    }

    /**
     * The body with the model inserted after the object's opening brace, or null when the body is
     * not a JSON object or already has a {@code model} field (of whatever value).
     */
    ByteBuf insertInto(ByteBuf body, ByteBufAllocator alloc) {
        long brace;
        boolean empty;
        try (JsonParser p = FACTORY.createParser((InputStream) new ByteBufInputStream(body.duplicate(), false))) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                return null;
            }
            brace = p.currentTokenLocation().getByteOffset();
            JsonToken t = p.nextToken();
            empty = t == JsonToken.END_OBJECT;
            while (t == JsonToken.FIELD_NAME) {
                // In any case: an upstream that matches names so (Go) reads a later "MODEL" over ours.
                if ("model".equalsIgnoreCase(p.currentName())) {
                    return null;
                }
                p.nextToken();
                p.skipChildren();
                t = p.nextToken();
            }
        } catch (IOException e) {
            return null;
        }
        if (brace < 0 || brace >= body.readableBytes()) {
            return null;
        }
        int at = body.readerIndex() + (int) brace + 1;
        int tail = body.writerIndex() - at;
        ByteBuf out = alloc.buffer(body.readableBytes() + field.length + 1);
        out.writeBytes(body, body.readerIndex(), at - body.readerIndex()).writeBytes(field);
        if (!empty) {
            out.writeByte(',');
        }
        out.writeBytes(body, at, tail);
        return out;
    }
}
