package io.megallm.proxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.handler.codec.http.DefaultHttpHeadersFactory;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.util.AsciiString;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.TreeSet;
import java.util.function.Predicate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The received-bytes headers behave as Netty's {@code DefaultHttpHeaders} holding the same fields:
 * a differential run of random heads and random changes, every read compared after every change,
 * and the bytes each writes as a relayed head.
 */
class ReceivedHeadersTest {

    private static final String[] NAMES = {
        "Content-Type", "content-type", "CONTENT-LENGTH", "Connection", "connection", "Keep-Alive",
        "Transfer-Encoding", "Retry-After", "X-Multi", "x-multi", "X-Request-Id", "Set-Cookie", "te", "X-Empty",
    };
    private static final String[] VALUES = {
        "application/json", "text/event-stream; charset=utf-8", "close", "keep-alive, Close", "chunked",
        "gzip, chunked", "30", "-7", "x", "", "a,b , c", "caf\u00e9", "Keep-Alive", "12345678901",
    };

    /** A head's field block as a parser indexes it: name, colon, blanks, value, CRLF. */
    private static ReceivedHeaders received(List<String[]> fields) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int[] index = new int[4 * fields.size()];
        for (int i = 0; i < fields.size(); i++) {
            byte[] name = fields.get(i)[0].getBytes(StandardCharsets.ISO_8859_1);
            byte[] value = fields.get(i)[1].getBytes(StandardCharsets.ISO_8859_1);
            index[4 * i] = out.size();
            out.writeBytes(name);
            index[4 * i + 1] = out.size();
            out.writeBytes(i % 2 == 0 ? ": ".getBytes(StandardCharsets.ISO_8859_1) : ":\t ".getBytes(StandardCharsets.ISO_8859_1));
            index[4 * i + 2] = out.size();
            out.writeBytes(value);
            index[4 * i + 3] = out.size();
            out.writeBytes("  \r\n".getBytes(StandardCharsets.ISO_8859_1));
        }
        return new ReceivedHeaders(out.toByteArray(), index, fields.size());
    }

    private static HttpHeaders reference(List<String[]> fields) {
        HttpHeaders h = DefaultHttpHeadersFactory.headersFactory().withValidation(false).newHeaders();
        for (String[] f : fields) {
            h.add(f[0], f[1]);
        }
        return h;
    }

    private static List<String> pairs(Iterator<? extends Map.Entry<? extends CharSequence, ? extends CharSequence>> it) {
        List<String> out = new ArrayList<>();
        while (it.hasNext()) {
            Map.Entry<? extends CharSequence, ? extends CharSequence> e = it.next();
            out.add(e.getKey() + "=" + e.getValue());
        }
        return out;
    }

    private static String head(HttpHeaders headers) {
        ByteBuf b = HeadBytes.head(ByteBufAllocator.DEFAULT, new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK, headers));
        try {
            return b.toString(StandardCharsets.ISO_8859_1);
        } finally {
            b.release();
        }
    }

    private static void same(HttpHeaders expected, ReceivedHeaders actual, String where) {
        assertEquals(expected.size(), actual.size(), where + ": size");
        assertEquals(expected.isEmpty(), actual.isEmpty(), where + ": isEmpty");
        assertEquals(pairs(expected.iteratorCharSequence()), pairs(actual.iteratorCharSequence()), where + ": fields in order");
        assertEquals(pairs(expected.iterator()), pairs(actual.iterator()), where + ": string fields");
        assertEquals(expected.entries().toString(), actual.entries().toString(), where + ": entries");
        assertEquals(lower(expected.names()), lower(actual.names()), where + ": names");
        for (String name : NAMES) {
            String n = name + " " + where;
            assertEquals(expected.get(name), actual.get(name), n + ": get");
            assertEquals(expected.get(new AsciiString(name)), actual.get(new AsciiString(name)), n + ": get(AsciiString)");
            assertEquals(expected.getAll(name), actual.getAll(name), n + ": getAll");
            assertEquals(expected.contains(name), actual.contains(name), n + ": contains");
            assertEquals(expected.getInt(name), actual.getInt(name), n + ": getInt");
            assertEquals(expected.getInt(name, -1), actual.getInt(name, -1), n + ": getInt default");
            for (String token : new String[] {"close", "Close", "keep-alive", "chunked", "b", "c", "a,b", ""}) {
                assertEquals(expected.containsValue(name, token, true), actual.containsValue(name, token, true),
                        n + ": containsValue ignoring case " + token);
                assertEquals(expected.containsValue(name, token, false), actual.containsValue(name, token, false),
                        n + ": containsValue " + token);
            }
            for (String value : VALUES) {
                assertEquals(expected.contains(name, value, true), actual.contains(name, value, true), n + ": contains " + value);
                assertEquals(expected.contains(name, value, false), actual.contains(name, value, false), n + ": contains exact " + value);
            }
        }
        assertEquals(head(expected), head(actual), where + ": the head's bytes");
    }

    private static TreeSet<String> lower(Iterable<String> names) {
        TreeSet<String> out = new TreeSet<>();
        names.forEach(n -> out.add(n.toLowerCase(Locale.ROOT)));
        return out;
    }

    @Test
    void randomHeadsAndChangesReadAsDefaultHttpHeadersDo() {
        Random random = new Random(20261207);
        for (int round = 0; round < 400; round++) {
            List<String[]> fields = new ArrayList<>();
            int n = random.nextInt(9);
            for (int i = 0; i < n; i++) {
                fields.add(new String[] {NAMES[random.nextInt(NAMES.length)], VALUES[random.nextInt(VALUES.length)]});
            }
            HttpHeaders expected = reference(fields);
            ReceivedHeaders actual = received(fields);
            same(expected, actual, "round " + round + " as received");
            for (int step = 0; step < 6; step++) {
                String name = NAMES[random.nextInt(NAMES.length)];
                String value = VALUES[random.nextInt(VALUES.length)];
                String where = "round " + round + " step " + step;
                switch (random.nextInt(7)) {
                    case 0 -> {
                        expected.add(name, value);
                        actual.add(name, value);
                        where += " add " + name;
                    }
                    case 1 -> {
                        expected.set(new AsciiString(name), new AsciiString(value));
                        actual.set(new AsciiString(name), new AsciiString(value));
                        where += " set " + name;
                    }
                    case 2 -> {
                        expected.remove(name);
                        actual.remove(name);
                        where += " remove " + name;
                    }
                    case 3 -> {
                        expected.setInt(name, step * 100);
                        actual.setInt(name, step * 100);
                        where += " setInt " + name;
                    }
                    case 4 -> {
                        int length = name.length();
                        Predicate<CharSequence> drop = cs -> cs.length() == length;
                        for (String each : new ArrayList<>(expected.names())) {
                            if (drop.test(each)) {
                                expected.remove(each);
                            }
                        }
                        actual.removeIf(drop);
                        where += " removeIf length " + length;
                    }
                    case 5 -> {
                        expected.set(name, List.of(value, "second"));
                        actual.set(name, List.of(value, "second"));
                        where += " set list " + name;
                    }
                    default -> {
                        expected.clear();
                        actual.clear();
                        where += " clear";
                    }
                }
                same(expected, actual, where);
            }
        }
    }

    @Test
    void nettysHelpersReadTheFramingFields() {
        ReceivedHeaders h = received(List.of(new String[] {"Transfer-Encoding", "gzip, Chunked"},
                new String[] {"Connection", "keep-alive, close"}, new String[] {"Content-Type", "text/event-stream"}));
        DefaultHttpResponse r = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK, h);
        assertTrue(HttpUtil.isTransferEncodingChunked(r));
        assertFalse(HttpUtil.isKeepAlive(r));
        assertFalse(HttpUtil.isContentLengthSet(r));
        h.remove(HttpHeaderNames.TRANSFER_ENCODING);
        h.add(HttpHeaderNames.CONTENT_LENGTH, "12");
        assertTrue(HttpUtil.isContentLengthSet(r));
        HttpUtil.setTransferEncodingChunked(r, true);
        assertFalse(HttpUtil.isContentLengthSet(r));
        assertTrue(HttpUtil.isTransferEncodingChunked(r));
        h.set(HttpHeaderNames.CONNECTION, HttpHeaderValues.KEEP_ALIVE);
        assertTrue(HttpUtil.isKeepAlive(r));
        assertEquals("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
                + "connection: keep-alive\r\n\r\n", head(h));
    }

    @Test
    void aRemovedFieldLeavesNoBytesAndTheLengthIsExact() {
        ReceivedHeaders h = received(List.of(new String[] {"Keep-Alive", "timeout=5"}, new String[] {"X-A", "1"},
                new String[] {"Proxy-Thing", "y"}, new String[] {"X-B", "caf\u00e9"}));
        h.removeIf(name -> name.length() >= 6 && name.toString().regionMatches(true, 0, "proxy-", 0, 6));
        h.remove("keep-alive");
        h.add(new AsciiString("x-request-id"), "abc");
        ByteBuf out = ByteBufAllocator.DEFAULT.buffer();
        try {
            h.writeTo(out);
            assertEquals(h.encodedLength(), out.readableBytes());
            assertEquals("X-A: 1\r\nX-B: caf\u00e9\r\nx-request-id: abc\r\n", out.toString(StandardCharsets.ISO_8859_1));
        } finally {
            out.release();
        }
    }
}
