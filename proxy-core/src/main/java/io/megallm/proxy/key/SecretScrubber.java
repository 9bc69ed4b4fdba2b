package io.megallm.proxy.key;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpResponseStatus;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Masks pool keys in upstream answers that are relayed to a client (contract §9). Upstreams like
 * to echo the key in a rejection ("Incorrect API key provided: sk-…"); the client must see at most
 * the masked form, in the body and in the head (a {@code WWW-Authenticate}, a debugging header or
 * the status line's reason phrase can carry it as well). Runs only on buffered rejection answers, never on the streaming path.
 */
public final class SecretScrubber {

    private SecretScrubber() {
    }

    /**
     * {@code body} with every occurrence of the first {@code count} keys' secrets replaced by their
     * masked form. Returns {@code body} itself when nothing was found; otherwise a new buffer, and
     * {@code body} is released.
     */
    public static ByteBuf scrub(ByteBuf body, ApiKey[] keys, int count, ByteBufAllocator alloc) {
        ByteBuf current = body;
        for (int i = 0; i < count; i++) {
            ApiKey key = keys[i];
            if (key != null) {
                current = replace(current, key.secret().getBytes(StandardCharsets.UTF_8),
                        key.masked().getBytes(StandardCharsets.UTF_8), alloc);
            }
        }
        return current;
    }

    /**
     * {@code headers} with every occurrence of the first {@code count} keys' secrets in a value
     * replaced by their masked form, and every field whose name holds one dropped (no masked form
     * of a name is a name the client could use). Other fields keep their order.
     */
    public static void scrub(HttpHeaders headers, ApiKey[] keys, int count) {
        List<String> tainted = null;
        for (Map.Entry<String, String> field : headers) {
            if (holdsSecret(field.getKey(), keys, count) || holdsSecret(field.getValue(), keys, count)) {
                if (tainted == null) {
                    tainted = new ArrayList<>(2);
                }
                if (!tainted.contains(field.getKey())) {
                    tainted.add(field.getKey());
                }
            }
        }
        if (tainted == null) {
            return;
        }
        for (String name : tainted) {
            List<String> values = headers.getAll(name);
            headers.remove(name);
            if (holdsSecret(name, keys, count)) {
                continue;
            }
            for (String value : values) {
                headers.add(name, scrubAscii(value, keys, count));
            }
        }
    }

    /** {@code status}, or the same code with its reason phrase masked if the phrase holds a key. */
    public static HttpResponseStatus scrub(HttpResponseStatus status, ApiKey[] keys, int count) {
        String reason = status.reasonPhrase();
        if (!holdsSecret(reason, keys, count)) {
            return status;
        }
        return new HttpResponseStatus(status.code(), scrubAscii(reason, keys, count));
    }

    /**
     * {@code text} with every occurrence of the first {@code count} keys' secrets masked, the mask's
     * ellipsis written as three dots: a header goes out as single bytes, and the ellipsis is not
     * one (it would go out as '?').
     */
    private static String scrubAscii(String text, ApiKey[] keys, int count) {
        String current = text;
        for (int i = 0; i < count; i++) {
            ApiKey key = keys[i];
            if (key != null && !key.secret().isEmpty()) {
                current = current.replace(key.secret(), key.masked().replace("\u2026", "..."));
            }
        }
        return current;
    }

    private static boolean holdsSecret(String text, ApiKey[] keys, int count) {
        for (int i = 0; i < count; i++) {
            ApiKey key = keys[i];
            if (key != null && !key.secret().isEmpty() && text.contains(key.secret())) {
                return true;
            }
        }
        return false;
    }

    private static ByteBuf replace(ByteBuf in, byte[] secret, byte[] masked, ByteBufAllocator alloc) {
        if (secret.length == 0) {
            return in;
        }
        int at = indexOf(in, in.readerIndex(), secret);
        if (at < 0) {
            return in;
        }
        ByteBuf out = alloc.buffer(in.readableBytes());
        int from = in.readerIndex();
        while (at >= 0) {
            out.writeBytes(in, from, at - from).writeBytes(masked);
            from = at + secret.length;
            at = indexOf(in, from, secret);
        }
        out.writeBytes(in, from, in.writerIndex() - from);
        in.release();
        return out;
    }

    private static int indexOf(ByteBuf in, int from, byte[] needle) {
        int last = in.writerIndex() - needle.length;
        for (int i = from; i <= last; i++) {
            i = in.indexOf(i, last + 1, needle[0]);
            if (i < 0) {
                return -1;
            }
            int j = 1;
            while (j < needle.length && in.getByte(i + j) == needle[j]) {
                j++;
            }
            if (j == needle.length) {
                return i;
            }
        }
        return -1;
    }
}
