package io.megallm.proxy.http;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * A request's header fields, kept as the bytes they arrived in and found by position: one
 * copy of the header block and four ints per field, with no map and no String per field unless
 * someone asks for one. A request carries around ten fields, so a lookup scans them; names are
 * compared by length first. Values are trimmed of surrounding blanks; text is one char per
 * received byte (ISO-8859-1), as HTTP/1.1 defines the octets. Not thread-safe: it lives on its
 * connection's event loop.
 */
public final class RequestHeaders {

    private final byte[] bytes;
    /** Per field: name start, name end, value start, value end; a removed field has name end -1. */
    private final int[] fields;
    private final int count;

    RequestHeaders(byte[] bytes, int[] fields, int count) {
        this.bytes = bytes;
        this.fields = fields;
        this.count = count;
    }

    /** The number of fields, removed ones included; see {@link #removed(int)}. */
    public int size() {
        return count;
    }

    public boolean removed(int i) {
        return fields[4 * i + 1] < 0;
    }

    public String name(int i) {
        int f = 4 * i;
        return text(fields[f], fields[f + 1]);
    }

    public String value(int i) {
        int f = 4 * i;
        return text(fields[f + 2], fields[f + 3]);
    }

    /** A view of one field's name at a time ({@link FieldNameView#at}), for a pass over the fields. */
    public FieldNameView nameView() {
        return new FieldNameView(bytes, fields);
    }

    public int nameLength(int i) {
        int f = 4 * i;
        return fields[f + 1] - fields[f];
    }

    /** True when field {@code i} (not removed) is named {@code name}, ASCII case ignored. */
    public boolean nameIs(int i, CharSequence name) {
        int f = 4 * i;
        return equalsIgnoreCase(bytes, fields[f], fields[f + 1], name);
    }

    /** The bytes {@code [start, end)} spell {@code s}, ASCII case ignored (false for a negative range). */
    public static boolean equalsIgnoreCase(byte[] b, int start, int end, CharSequence s) {
        if (end - start != s.length()) {
            return false;
        }
        for (int k = 0; k < s.length(); k++) {
            if (lower(b[start + k]) != lower(s.charAt(k))) {
                return false;
            }
        }
        return true;
    }

    /** The first value of {@code name}, or null. */
    public String get(CharSequence name) {
        int i = indexOf(name, 0);
        return i < 0 ? null : value(i);
    }

    public List<String> getAll(CharSequence name) {
        List<String> all = null;
        for (int i = indexOf(name, 0); i >= 0; i = indexOf(name, i + 1)) {
            if (all == null) {
                all = new ArrayList<>(2);
            }
            all.add(value(i));
        }
        return all == null ? List.of() : all;
    }

    public boolean contains(CharSequence name) {
        return indexOf(name, 0) >= 0;
    }

    /** Drops every field named {@code name}: it is neither read nor forwarded afterwards. */
    public void remove(CharSequence name) {
        for (int i = indexOf(name, 0); i >= 0; i = indexOf(name, i + 1)) {
            fields[4 * i + 1] = -1;
        }
    }

    /** The index of the first field at or after {@code from} named {@code name}, or -1. */
    public int indexOf(CharSequence name, int from) {
        for (int i = from; i < count; i++) {
            if (nameIs(i, name)) {
                return i;
            }
        }
        return -1;
    }

    /**
     * Copies field {@code i} as a header line, {@code name: value\r\n}, into {@code out} at
     * {@code at}, and returns the position after it. The name keeps the case it arrived in.
     */
    public int writeLine(int i, byte[] out, int at) {
        int f = 4 * i;
        int n = fields[f + 1] - fields[f];
        System.arraycopy(bytes, fields[f], out, at, n);
        at += n;
        out[at++] = ':';
        out[at++] = ' ';
        int v = fields[f + 3] - fields[f + 2];
        System.arraycopy(bytes, fields[f + 2], out, at, v);
        at += v;
        out[at++] = '\r';
        out[at++] = '\n';
        return at;
    }

    /** The bytes {@link #writeLine} writes for field {@code i}. */
    public int lineLength(int i) {
        int f = 4 * i;
        return fields[f + 1] - fields[f] + fields[f + 3] - fields[f + 2] + 4;
    }

    /** "name: value" per line, for test failure messages and debugging. */
    @Override
    public String toString() {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < count; i++) {
            if (!removed(i)) {
                b.append(name(i)).append(": ").append(value(i)).append('\n');
            }
        }
        return b.toString();
    }

    private String text(int start, int end) {
        return new String(bytes, start, end - start, StandardCharsets.ISO_8859_1);
    }

    private static int lower(int c) {
        c &= 0xff;
        return c >= 'A' && c <= 'Z' ? c | 0x20 : c;
    }

    private static int lower(char c) {
        return c >= 'A' && c <= 'Z' ? c | 0x20 : c;
    }
}
