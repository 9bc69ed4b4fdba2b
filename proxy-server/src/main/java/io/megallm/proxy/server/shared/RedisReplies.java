package io.megallm.proxy.server.shared;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * Reading the values of a Lua script's reply. Lettuce hands them over as {@code Long},
 * {@code ByteBuffer} or {@code String} depending on the script's output type, and Redis may
 * hold anything an operator wrote by hand: what does not read as a number counts as 0.
 */
final class RedisReplies {

    private RedisReplies() {
    }

    static String text(Object o) {
        if (o instanceof ByteBuffer b) {
            return StandardCharsets.UTF_8.decode(b.duplicate()).toString();
        }
        return o == null ? "" : o.toString();
    }

    static long number(Object o) {
        if (o instanceof Long l) {
            return l;
        }
        return parse(text(o));
    }

    static long parse(String s) {
        try {
            return Long.parseLong(s.strip());
        } catch (NumberFormatException e) {
            return 0;
        }
    }
}
