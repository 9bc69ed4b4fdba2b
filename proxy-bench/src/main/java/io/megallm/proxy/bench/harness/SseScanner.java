package io.megallm.proxy.bench.harness;

import io.netty.buffer.ByteBuf;

import java.nio.charset.StandardCharsets;

/**
 * Finds {@code "sent_ns":<digits>} in a stream of body bytes, across any split of the bytes
 * into reads and chunks, and reports each value. No allocation.
 */
public final class SseScanner {

    /** Receives the send time of each event found. */
    @FunctionalInterface
    public interface Sink {
        void onEvent(long sentNanos);
    }

    private static final byte[] KEY = "\"sent_ns\":".getBytes(StandardCharsets.US_ASCII);

    private int matched;
    private boolean inNumber;
    private boolean anyDigit;
    private long value;

    public void scan(ByteBuf buf, int index, int length, Sink sink) {
        for (int i = index, end = index + length; i < end; i++) {
            byte c = buf.getByte(i);
            if (inNumber) {
                if (c >= '0' && c <= '9') {
                    value = value * 10 + (c - '0');
                    anyDigit = true;
                    continue;
                }
                if (c == ' ' && !anyDigit) {
                    continue;
                }
                inNumber = false;
                if (anyDigit) {
                    sink.onEvent(value);
                }
            }
            if (c == KEY[matched]) {
                matched++;
                if (matched == KEY.length) {
                    matched = 0;
                    inNumber = true;
                    anyDigit = false;
                    value = 0;
                }
            } else {
                matched = c == KEY[0] ? 1 : 0;
            }
        }
    }
}
