package io.megallm.proxy.bench.harness;

import io.megallm.proxy.http.JsonText;
import java.lang.reflect.RecordComponent;
import java.nio.file.Path;
import java.util.Collection;
import java.util.Map;

/** A small JSON writer for the results: records become objects; NaN and infinities become null. */
public final class Json {

    private Json() {
    }

    public static String write(Object value) {
        StringBuilder b = new StringBuilder(64 * 1024);
        write(b, value, 0);
        return b.append('\n').toString();
    }

    private static void write(StringBuilder b, Object v, int indent) {
        if (v == null) {
            b.append("null");
        } else if (v instanceof String s) {
            string(b, s);
        } else if (v instanceof Double d) {
            number(b, d);
        } else if (v instanceof Float f) {
            number(b, f.doubleValue());
        } else if (v instanceof Number || v instanceof Boolean) {
            b.append(v);
        } else if (v instanceof Path || v instanceof Enum<?> || v instanceof Character) {
            string(b, v.toString());
        } else if (v instanceof Map<?, ?> m) {
            b.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : m.entrySet()) {
                first = sep(b, first, indent + 1);
                string(b, String.valueOf(e.getKey()));
                b.append(": ");
                write(b, e.getValue(), indent + 1);
            }
            close(b, first, indent, '}');
        } else if (v instanceof Collection<?> c) {
            b.append('[');
            boolean first = true;
            for (Object o : c) {
                first = sep(b, first, indent + 1);
                write(b, o, indent + 1);
            }
            close(b, first, indent, ']');
        } else if (v instanceof int[] a) {
            b.append('[');
            for (int i = 0; i < a.length; i++) {
                b.append(i == 0 ? "" : ", ").append(a[i]);
            }
            b.append(']');
        } else if (v.getClass().isRecord()) {
            b.append('{');
            boolean first = true;
            for (RecordComponent rc : v.getClass().getRecordComponents()) {
                first = sep(b, first, indent + 1);
                string(b, rc.getName());
                b.append(": ");
                try {
                    write(b, rc.getAccessor().invoke(v), indent + 1);
                } catch (ReflectiveOperationException e) {
                    throw new IllegalStateException(e);
                }
            }
            close(b, first, indent, '}');
        } else {
            string(b, v.toString());
        }
    }

    private static boolean sep(StringBuilder b, boolean first, int indent) {
        if (!first) {
            b.append(',');
        }
        b.append('\n');
        b.append("  ".repeat(indent));
        return false;
    }

    private static void close(StringBuilder b, boolean empty, int indent, char c) {
        if (!empty) {
            b.append('\n').append("  ".repeat(indent));
        }
        b.append(c);
    }

    private static void number(StringBuilder b, double d) {
        if (Double.isNaN(d) || Double.isInfinite(d)) {
            b.append("null");
        } else if (d == Math.rint(d) && Math.abs(d) < 1e15) {
            b.append((long) d);
        } else {
            b.append(new java.math.BigDecimal(d).round(new java.math.MathContext(6)).stripTrailingZeros()
                    .toPlainString());
        }
    }

    private static void string(StringBuilder b, String s) {
        b.append(JsonText.quote(s));
    }
}
