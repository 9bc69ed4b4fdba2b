package io.megallm.proxy.server.metrics;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;

/**
 * The text of one /metrics scrape, moved into the response buffer a piece at a time. With
 * 100,000 clients a scrape is ~19 MB: one StringBuilder of it is a heap array of that size (and
 * twice that while it grows), which G1 must place in contiguous regions of a small heap and
 * could not (an OutOfMemoryError with the heap half free). Here the text never passes ~64 KB.
 */
public final class ScrapeText {

    private static final int SPILL_AT = 64 * 1024;

    private final StringBuilder text = new StringBuilder(SPILL_AT + 4096);
    private final ByteBuf out;

    /** {@code out}: the buffer the scrape ends in; it stays the caller's. */
    public ScrapeText(ByteBuf out) {
        this.out = out;
    }

    /** Where the next lines are appended. */
    public StringBuilder text() {
        return text;
    }

    /** Moves the text into the buffer once it is large; call between lines. */
    public void spill() {
        if (text.length() >= SPILL_AT) {
            flush();
        }
    }

    /** Moves what is left into the buffer. */
    public void finish() {
        flush();
    }

    private void flush() {
        ByteBufUtil.writeUtf8(out, text);
        text.setLength(0);
    }
}
