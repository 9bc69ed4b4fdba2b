package io.megallm.proxy.key;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

import java.nio.charset.StandardCharsets;

/**
 * Masks pool keys in upstream answers that are relayed to a client (contract §9). Upstreams like
 * to echo the key in a rejection ("Incorrect API key provided: sk-…"); the client must see at most
 * the masked form. Runs only on buffered rejection answers, never on the streaming path.
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
