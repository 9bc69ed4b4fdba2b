package io.megallm.proxy.server.access;

import java.util.Arrays;

/**
 * A growable byte array that access lines are written into as their UTF-8 bytes, one byte per
 * char appended (callers append only chars up to 0xff). A batch handed to the writer is one
 * exact-length copy, the same array for the file and the console.
 */
final class LineBuffer {

    private byte[] bytes;
    private int length;
    private final byte[] digits = new byte[20];

    LineBuffer(int capacity) {
        bytes = new byte[capacity];
    }

    int length() {
        return length;
    }

    LineBuffer append(char c) {
        if (length == bytes.length) {
            grow(1);
        }
        bytes[length++] = (byte) c;
        return this;
    }

    /**
     * {@code s}'s chars, each one byte: only for text that is ASCII or already one char per byte.
     * String's low-byte copy is deprecated for text in general, which is exactly what makes it
     * right here: for a one-byte-per-char string it is an array copy, where a loop over
     * {@code charAt} checked and narrowed every char.
     */
    @SuppressWarnings("deprecation")
    LineBuffer append(String s) {
        int n = s.length();
        if (length + n > bytes.length) {
            grow(n);
        }
        s.getBytes(0, n, bytes, length);
        length += n;
        return this;
    }

    /** Bytes as they are: the line's fixed field names, encoded once. */
    LineBuffer append(byte[] literal) {
        int n = literal.length;
        if (length + n > bytes.length) {
            grow(n);
        }
        System.arraycopy(literal, 0, bytes, length, n);
        length += n;
        return this;
    }

    LineBuffer append(boolean v) {
        return append(v ? "true" : "false");
    }

    /** Decimal, without a String. */
    LineBuffer append(long v) {
        if (v < 0) {
            if (v == Long.MIN_VALUE) {
                return append(Long.toString(v));
            }
            append('-');
            v = -v;
        }
        int n = 0;
        do {
            digits[n++] = (byte) ('0' + (int) (v % 10));
            v /= 10;
        } while (v != 0);
        if (length + n > bytes.length) {
            grow(n);
        }
        while (n > 0) {
            bytes[length++] = digits[--n];
        }
        return this;
    }

    /** The bytes so far, as an array of their exact length; the buffer is empty afterwards. */
    byte[] take() {
        byte[] out = Arrays.copyOf(bytes, length);
        length = 0;
        return out;
    }

    private void grow(int more) {
        bytes = Arrays.copyOf(bytes, Math.max(bytes.length * 2, length + more));
    }
}
