package io.megallm.proxy.http;

import java.nio.charset.StandardCharsets;

/**
 * A view of one header field's name at a time, over the bytes the head arrived in, indexed four
 * ints a field (name start, name end, value start, value end) as {@link RequestHeaders} and
 * {@link ReceivedHeaders} keep them: {@link #at} points it at a field. One view serves a whole pass
 * over the fields, instead of an object per field. Valid while its headers are; one char per byte.
 */
public final class FieldNameView implements CharSequence {

    private final byte[] bytes;
    private final int[] fields;
    private int start;
    private int length;

    FieldNameView(byte[] bytes, int[] fields) {
        this.bytes = bytes;
        this.fields = fields;
    }

    /** Points the view at field {@code i}'s name. */
    public FieldNameView at(int i) {
        int f = 4 * i;
        start = fields[f];
        length = fields[f + 1] - start;
        return this;
    }

    @Override
    public int length() {
        return length;
    }

    @Override
    public char charAt(int index) {
        if (index < 0 || index >= length) {
            throw new IndexOutOfBoundsException(index);
        }
        return (char) (bytes[start + index] & 0xff);
    }

    @Override
    public CharSequence subSequence(int from, int to) {
        return toString().substring(from, to);
    }

    @Override
    public String toString() {
        return new String(bytes, start, length, StandardCharsets.ISO_8859_1);
    }
}
