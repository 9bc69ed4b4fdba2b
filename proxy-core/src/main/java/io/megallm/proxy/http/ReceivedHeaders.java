package io.megallm.proxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.handler.codec.DateFormatter;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.util.AsciiString;

import java.nio.charset.StandardCharsets;
import java.util.AbstractMap;
import java.util.ArrayList;
import java.util.Calendar;
import java.util.Date;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Set;
import java.util.function.Predicate;

/**
 * Header fields of a received head (the upstream's answer), kept as the bytes they arrived in and
 * found by position, behind Netty's {@link HttpHeaders} so that the relay and Netty's helpers
 * read them as any other headers. Parsing an answer's head into {@code DefaultHttpHeaders} cost
 * two strings and a hashed entry per field, and writing it out again walked them back to bytes;
 * here a field is four ints, and {@link #writeTo(ByteBuf)} copies the received bytes by range.
 * Fields set or added later (the proxy's own: X-Request-Id, Connection, …) follow the received
 * ones in insertion order, as in {@code DefaultHttpHeaders}; setting a name removes it first.
 * Text is one char per byte (ISO-8859-1); names compare case-insensitively. No validation: the
 * parser has checked what it indexed, and what the proxy adds is its own. Not thread-safe.
 */
public final class ReceivedHeaders extends HttpHeaders {

    private final byte[] bytes;
    /** Per field: name start, name end, value start, value end; a removed field has name end -1. */
    private final int[] fields;
    private final int count;
    private int live;
    /** Fields added after parsing: name, value, name, value, …; null until the first. */
    private List<CharSequence> added;

    /**
     * {@code fields} holds {@code count} fields, four ints each, indexing {@code bytes}; both
     * arrays are taken, not copied.
     */
    public ReceivedHeaders(byte[] bytes, int[] fields, int count) {
        this.bytes = bytes;
        this.fields = fields;
        this.count = count;
        this.live = count;
    }

    // ---- lookups ------------------------------------------------------------------------------

    private boolean nameIs(int i, CharSequence name) {
        int f = 4 * i;
        return RequestHeaders.equalsIgnoreCase(bytes, fields[f], fields[f + 1], name);
    }

    private String value(int i) {
        int f = 4 * i;
        return new String(bytes, fields[f + 2], fields[f + 3] - fields[f + 2], StandardCharsets.ISO_8859_1);
    }

    private AsciiString nameAscii(int i) {
        int f = 4 * i;
        return new AsciiString(bytes, fields[f], fields[f + 1] - fields[f], false);
    }

    private AsciiString valueAscii(int i) {
        int f = 4 * i;
        return new AsciiString(bytes, fields[f + 2], fields[f + 3] - fields[f + 2], false);
    }

    private boolean removed(int i) {
        return fields[4 * i + 1] < 0;
    }

    @Override
    public String get(String name) {
        return get((CharSequence) name);
    }

    @Override
    public String get(CharSequence name) {
        for (int i = 0; i < count; i++) {
            if (!removed(i) && nameIs(i, name)) {
                return value(i);
            }
        }
        if (added != null) {
            for (int k = 0; k < added.size(); k += 2) {
                if (AsciiString.contentEqualsIgnoreCase(added.get(k), name)) {
                    return added.get(k + 1).toString();
                }
            }
        }
        return null;
    }

    @Override
    public List<String> getAll(String name) {
        return getAll((CharSequence) name);
    }

    @Override
    public List<String> getAll(CharSequence name) {
        List<String> values = null;
        for (int i = 0; i < count; i++) {
            if (!removed(i) && nameIs(i, name)) {
                if (values == null) {
                    values = new ArrayList<>(2);
                }
                values.add(value(i));
            }
        }
        if (added != null) {
            for (int k = 0; k < added.size(); k += 2) {
                if (AsciiString.contentEqualsIgnoreCase(added.get(k), name)) {
                    if (values == null) {
                        values = new ArrayList<>(2);
                    }
                    values.add(added.get(k + 1).toString());
                }
            }
        }
        return values == null ? List.of() : values;
    }

    @Override
    public boolean contains(String name) {
        return contains((CharSequence) name);
    }

    @Override
    public boolean contains(CharSequence name) {
        for (int i = 0; i < count; i++) {
            if (!removed(i) && nameIs(i, name)) {
                return true;
            }
        }
        if (added != null) {
            for (int k = 0; k < added.size(); k += 2) {
                if (AsciiString.contentEqualsIgnoreCase(added.get(k), name)) {
                    return true;
                }
            }
        }
        return false;
    }

    @Override
    public boolean contains(String name, String value, boolean ignoreCase) {
        return contains((CharSequence) name, value, ignoreCase);
    }

    @Override
    public boolean contains(CharSequence name, CharSequence value, boolean ignoreCase) {
        for (int i = 0; i < count; i++) {
            if (!removed(i) && nameIs(i, name) && same(valueAscii(i), value, ignoreCase)) {
                return true;
            }
        }
        if (added != null) {
            for (int k = 0; k < added.size(); k += 2) {
                if (AsciiString.contentEqualsIgnoreCase(added.get(k), name) && same(added.get(k + 1), value, ignoreCase)) {
                    return true;
                }
            }
        }
        return false;
    }

    /** Whether a comma-separated element of a field named {@code name} is {@code value} (Connection: close, …). */
    @Override
    public boolean containsValue(CharSequence name, CharSequence value, boolean ignoreCase) {
        for (int i = 0; i < count; i++) {
            if (!removed(i) && nameIs(i, name) && hasElement(valueAscii(i), value, ignoreCase)) {
                return true;
            }
        }
        if (added != null) {
            for (int k = 0; k < added.size(); k += 2) {
                if (AsciiString.contentEqualsIgnoreCase(added.get(k), name) && hasElement(added.get(k + 1), value, ignoreCase)) {
                    return true;
                }
            }
        }
        return false;
    }

    private static boolean same(CharSequence a, CharSequence b, boolean ignoreCase) {
        return ignoreCase ? AsciiString.contentEqualsIgnoreCase(a, b) : AsciiString.contentEquals(a, b);
    }

    private static boolean hasElement(CharSequence list, CharSequence value, boolean ignoreCase) {
        int n = list.length();
        int start = 0;
        while (start <= n) {
            int comma = start;
            while (comma < n && list.charAt(comma) != ',') {
                comma++;
            }
            int from = start;
            int to = comma;
            while (from < to && isBlank(list.charAt(from))) {
                from++;
            }
            while (to > from && isBlank(list.charAt(to - 1))) {
                to--;
            }
            if (to - from == value.length()) {
                boolean match = true;
                for (int k = 0; k < value.length() && match; k++) {
                    char c = list.charAt(from + k);
                    char v = value.charAt(k);
                    match = ignoreCase ? lower(c) == lower(v) : c == v;
                }
                if (match) {
                    return true;
                }
            }
            start = comma + 1;
        }
        return false;
    }

    private static boolean isBlank(char c) {
        return c == ' ' || c == '\t';
    }

    @Override
    public Integer getInt(CharSequence name) {
        String v = get(name);
        if (v == null) {
            return null;
        }
        try {
            return Integer.parseInt(v);
        } catch (NumberFormatException e) {
            return null;
        }
    }

    @Override
    public int getInt(CharSequence name, int defaultValue) {
        Integer v = getInt(name);
        return v == null ? defaultValue : v;
    }

    @Override
    public Short getShort(CharSequence name) {
        String v = get(name);
        if (v == null) {
            return null;
        }
        try {
            return Short.parseShort(v);
        } catch (NumberFormatException e) {
            return null;
        }
    }

    @Override
    public short getShort(CharSequence name, short defaultValue) {
        Short v = getShort(name);
        return v == null ? defaultValue : v;
    }

    @Override
    public Long getTimeMillis(CharSequence name) {
        String v = get(name);
        if (v == null) {
            return null;
        }
        Date d = DateFormatter.parseHttpDate(v);
        return d == null ? null : d.getTime();
    }

    @Override
    public long getTimeMillis(CharSequence name, long defaultValue) {
        Long v = getTimeMillis(name);
        return v == null ? defaultValue : v;
    }

    @Override
    public boolean isEmpty() {
        return size() == 0;
    }

    @Override
    public int size() {
        return live + (added == null ? 0 : added.size() / 2);
    }

    @Override
    public Set<String> names() {
        Set<String> names = new LinkedHashSet<>();
        for (Iterator<Map.Entry<CharSequence, CharSequence>> it = iteratorCharSequence(); it.hasNext(); ) {
            names.add(it.next().getKey().toString());
        }
        return names;
    }

    @Override
    public List<Map.Entry<String, String>> entries() {
        List<Map.Entry<String, String>> entries = new ArrayList<>(size());
        for (Iterator<Map.Entry<String, String>> it = iterator(); it.hasNext(); ) {
            entries.add(it.next());
        }
        return entries;
    }

    @Override
    public Iterator<Map.Entry<String, String>> iterator() {
        Iterator<Map.Entry<CharSequence, CharSequence>> it = iteratorCharSequence();
        return new Iterator<>() {
            @Override
            public boolean hasNext() {
                return it.hasNext();
            }

            @Override
            public Map.Entry<String, String> next() {
                Map.Entry<CharSequence, CharSequence> e = it.next();
                return new AbstractMap.SimpleImmutableEntry<>(e.getKey().toString(), e.getValue().toString());
            }
        };
    }

    /** Received fields in order, then the added ones; a snapshot of neither is taken. */
    @Override
    public Iterator<Map.Entry<CharSequence, CharSequence>> iteratorCharSequence() {
        return new Iterator<>() {
            private int i = skipRemoved(0);
            private int k;

            private int skipRemoved(int from) {
                while (from < count && removed(from)) {
                    from++;
                }
                return from;
            }

            @Override
            public boolean hasNext() {
                return i < count || (added != null && k < added.size());
            }

            @Override
            public Map.Entry<CharSequence, CharSequence> next() {
                if (i < count) {
                    Map.Entry<CharSequence, CharSequence> e = new AbstractMap.SimpleImmutableEntry<>(nameAscii(i), valueAscii(i));
                    i = skipRemoved(i + 1);
                    return e;
                }
                if (added == null || k >= added.size()) {
                    throw new NoSuchElementException();
                }
                Map.Entry<CharSequence, CharSequence> e = new AbstractMap.SimpleImmutableEntry<>(added.get(k), added.get(k + 1));
                k += 2;
                return e;
            }
        };
    }

    // ---- changes ------------------------------------------------------------------------------

    @Override
    public HttpHeaders add(String name, Object value) {
        return add((CharSequence) name, value);
    }

    @Override
    public HttpHeaders add(CharSequence name, Object value) {
        if (added == null) {
            added = new ArrayList<>(6);
        }
        added.add(name);
        added.add(text(value));
        return this;
    }

    @Override
    public HttpHeaders add(String name, Iterable<?> values) {
        return add((CharSequence) name, values);
    }

    @Override
    public HttpHeaders add(CharSequence name, Iterable<?> values) {
        for (Object v : values) {
            add(name, v);
        }
        return this;
    }

    @Override
    public HttpHeaders addInt(CharSequence name, int value) {
        return add(name, Integer.toString(value));
    }

    @Override
    public HttpHeaders addShort(CharSequence name, short value) {
        return add(name, Short.toString(value));
    }

    @Override
    public HttpHeaders set(String name, Object value) {
        return set((CharSequence) name, value);
    }

    @Override
    public HttpHeaders set(CharSequence name, Object value) {
        remove(name);
        return add(name, value);
    }

    @Override
    public HttpHeaders set(String name, Iterable<?> values) {
        return set((CharSequence) name, values);
    }

    @Override
    public HttpHeaders set(CharSequence name, Iterable<?> values) {
        remove(name);
        return add(name, values);
    }

    @Override
    public HttpHeaders setInt(CharSequence name, int value) {
        return set(name, Integer.toString(value));
    }

    @Override
    public HttpHeaders setShort(CharSequence name, short value) {
        return set(name, Short.toString(value));
    }

    @Override
    public HttpHeaders remove(String name) {
        return remove((CharSequence) name);
    }

    @Override
    public HttpHeaders remove(CharSequence name) {
        for (int i = 0; i < count; i++) {
            if (!removed(i) && nameIs(i, name)) {
                fields[4 * i + 1] = -1;
                live--;
            }
        }
        if (added != null) {
            for (int k = added.size() - 2; k >= 0; k -= 2) {
                if (AsciiString.contentEqualsIgnoreCase(added.get(k), name)) {
                    added.remove(k + 1);
                    added.remove(k);
                }
            }
        }
        return this;
    }

    /**
     * Removes every field whose name {@code drop} accepts. A received name is a view over the
     * received bytes, valid during the call only: the hop-by-hop strip of each relayed answer
     * reads every name, and this way reads them without an object per field.
     */
    public void removeIf(Predicate<CharSequence> drop) {
        FieldNameView view = new FieldNameView(bytes, fields);
        for (int i = 0; i < count; i++) {
            if (!removed(i) && drop.test(view.at(i))) {
                fields[4 * i + 1] = -1;
                live--;
            }
        }
        if (added != null) {
            for (int k = added.size() - 2; k >= 0; k -= 2) {
                if (drop.test(added.get(k))) {
                    added.remove(k + 1);
                    added.remove(k);
                }
            }
        }
    }

    @Override
    public HttpHeaders clear() {
        for (int i = 0; i < count; i++) {
            fields[4 * i + 1] = -1;
        }
        live = 0;
        added = null;
        return this;
    }

    private static CharSequence text(Object value) {
        if (value instanceof CharSequence s) {
            return s;
        }
        if (value instanceof Date d) {
            return DateFormatter.format(d);
        }
        if (value instanceof Calendar c) {
            return DateFormatter.format(c.getTime());
        }
        return String.valueOf(value);
    }

    // ---- bytes --------------------------------------------------------------------------------

    /** The bytes {@link #writeTo(ByteBuf)} writes. */
    public int encodedLength() {
        int n = 0;
        for (int i = 0; i < count; i++) {
            if (!removed(i)) {
                int f = 4 * i;
                n += fields[f + 1] - fields[f] + fields[f + 3] - fields[f + 2] + 4;
            }
        }
        if (added != null) {
            for (int k = 0; k < added.size(); k += 2) {
                n += added.get(k).length() + added.get(k + 1).length() + 4;
            }
        }
        return n;
    }

    /** Every field as {@code name: value\r\n}; received fields as the bytes that came in. */
    public void writeTo(ByteBuf out) {
        for (int i = 0; i < count; i++) {
            if (!removed(i)) {
                int f = 4 * i;
                out.writeBytes(bytes, fields[f], fields[f + 1] - fields[f]);
                out.writeShort((':' << 8) | ' ');
                out.writeBytes(bytes, fields[f + 2], fields[f + 3] - fields[f + 2]);
                out.writeShort(('\r' << 8) | '\n');
            }
        }
        if (added != null) {
            for (int k = 0; k < added.size(); k += 2) {
                ascii(out, added.get(k));
                out.writeShort((':' << 8) | ' ');
                ascii(out, added.get(k + 1));
                out.writeShort(('\r' << 8) | '\n');
            }
        }
    }

    private static void ascii(ByteBuf out, CharSequence s) {
        if (s instanceof AsciiString a) {
            out.writeBytes(a.array(), a.arrayOffset(), a.length());
        } else {
            // One char per byte, as the received text was read (ByteBufUtil's bulk copy for a String).
            ByteBufUtil.writeAscii(out, s);
        }
    }

    private static int lower(int c) {
        return c >= 'A' && c <= 'Z' ? c + 32 : c;
    }
}
