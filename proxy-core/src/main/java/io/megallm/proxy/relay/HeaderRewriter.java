package io.megallm.proxy.relay;

import io.megallm.proxy.http.Exchange;
import io.megallm.proxy.http.InboundRequest;
import io.megallm.proxy.upstream.UpstreamTarget;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.util.AsciiString;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/** Builds the headers an attempt sends upstream and cleans the headers relayed back (contract §6). */
public final class HeaderRewriter {

    static final AsciiString X_FORWARDED_FOR = AsciiString.cached("x-forwarded-for");
    static final AsciiString X_ACCEL_BUFFERING = AsciiString.cached("x-accel-buffering");
    static final AsciiString NO = AsciiString.cached("no");
    private static final AsciiString KEEP_ALIVE = AsciiString.cached("keep-alive");

    private HeaderRewriter() {
    }

    /**
     * The upstream request head as bytes, request line and headers, all but the per-attempt
     * {@code Authorization} line and the blank line that ends the head: built once per request and
     * copied into each attempt's buffer, instead of a header map per request that the encoder
     * walks again. The body is sent whole with a Content-Length, so the client's framing headers
     * are not carried over. Names and values as Netty decoded them are one char per received byte
     * and go out as those bytes.
     */
    public static byte[] upstreamHead(InboundRequest request, UpstreamTarget target, String uri) {
        HttpHeaders in = request.headers();
        List<String> connectionNamed = connectionTokens(in);
        StringBuilder b = new StringBuilder(512);
        b.append(request.method().name()).append(' ').append(uri).append(" HTTP/1.1\r\n");
        line(b, HttpHeaderNames.HOST, target.hostHeader());
        for (Iterator<Map.Entry<CharSequence, CharSequence>> it = in.iteratorCharSequence(); it.hasNext(); ) {
            Map.Entry<CharSequence, CharSequence> e = it.next();
            CharSequence name = e.getKey();
            if (isHopByHop(name) || setPerAttempt(name) || named(connectionNamed, name)) {
                continue;
            }
            line(b, name, e.getValue());
        }
        int length = request.body().readableBytes();
        if (length > 0 || methodHasBody(request.method())) {
            b.append(HttpHeaderNames.CONTENT_LENGTH).append(": ").append(length).append("\r\n");
        }
        String ip = request.clientIp();
        if (ip != null) {
            b.append(X_FORWARDED_FOR).append(": ");
            // Several X-Forwarded-For lines are one list (RFC 9110 §5.3); keep them all, in order.
            for (String hop : in.getAll(X_FORWARDED_FOR)) {
                if (!hop.isBlank()) {
                    b.append(hop.strip()).append(", ");
                }
            }
            b.append(ip).append("\r\n");
        }
        line(b, Exchange.X_REQUEST_ID, request.requestId());
        return b.toString().getBytes(StandardCharsets.ISO_8859_1);
    }

    private static void line(StringBuilder b, CharSequence name, CharSequence value) {
        b.append(name).append(": ").append(value).append("\r\n");
    }

    /** Removes hop-by-hop headers from a response about to be relayed, in place. */
    public static void stripResponse(HttpHeaders headers) {
        List<String> connectionNamed = connectionTokens(headers);
        List<CharSequence> gone = null;
        for (Iterator<Map.Entry<CharSequence, CharSequence>> it = headers.iteratorCharSequence(); it.hasNext(); ) {
            CharSequence name = it.next().getKey();
            if (isHopByHop(name) || named(connectionNamed, name)) {
                if (gone == null) {
                    gone = new ArrayList<>(4);
                }
                gone.add(name);
            }
        }
        if (gone != null) {
            gone.forEach(headers::remove);
        }
    }

    /**
     * Headers that do not cross the proxy in either direction: Connection, Keep-Alive, TE,
     * Trailer, Upgrade and every Proxy-*. Chosen by name length first, so that a header costs one
     * comparison or none.
     */
    static boolean isHopByHop(CharSequence name) {
        int n = name.length();
        if (n >= 6 && (name.charAt(0) | 0x20) == 'p' && startsWithIgnoreCase(name, "proxy-")) {
            return true;
        }
        return switch (n) {
            case 2 -> AsciiString.contentEqualsIgnoreCase(name, HttpHeaderNames.TE);
            case 7 -> AsciiString.contentEqualsIgnoreCase(name, HttpHeaderNames.TRAILER)
                    || AsciiString.contentEqualsIgnoreCase(name, HttpHeaderNames.UPGRADE);
            case 10 -> AsciiString.contentEqualsIgnoreCase(name, HttpHeaderNames.CONNECTION)
                    || AsciiString.contentEqualsIgnoreCase(name, KEEP_ALIVE);
            default -> false;
        };
    }

    /** Request headers the proxy sets itself for every attempt (or drops: Expect), by length first. */
    private static boolean setPerAttempt(CharSequence name) {
        return switch (name.length()) {
            case 4 -> AsciiString.contentEqualsIgnoreCase(name, HttpHeaderNames.HOST);
            case 6 -> AsciiString.contentEqualsIgnoreCase(name, HttpHeaderNames.EXPECT);
            case 12 -> AsciiString.contentEqualsIgnoreCase(name, Exchange.X_REQUEST_ID);
            case 13 -> AsciiString.contentEqualsIgnoreCase(name, HttpHeaderNames.AUTHORIZATION);
            case 14 -> AsciiString.contentEqualsIgnoreCase(name, HttpHeaderNames.CONTENT_LENGTH);
            case 15 -> AsciiString.contentEqualsIgnoreCase(name, X_FORWARDED_FOR);
            case 17 -> AsciiString.contentEqualsIgnoreCase(name, HttpHeaderNames.TRANSFER_ENCODING);
            default -> false;
        };
    }

    private static boolean methodHasBody(HttpMethod method) {
        return method.equals(HttpMethod.POST) || method.equals(HttpMethod.PUT) || method.equals(HttpMethod.PATCH);
    }

    private static List<String> connectionTokens(HttpHeaders headers) {
        List<String> values = headers.getAll(HttpHeaderNames.CONNECTION);
        if (values.isEmpty()) {
            return List.of();
        }
        List<String> names = new ArrayList<>(2);
        for (String v : values) {
            for (String token : v.split(",")) {
                String t = token.trim();
                if (!t.isEmpty() && !t.equalsIgnoreCase("close") && !t.equalsIgnoreCase("keep-alive")) {
                    names.add(t);
                }
            }
        }
        return names;
    }

    private static boolean named(List<String> names, CharSequence name) {
        for (int i = 0; i < names.size(); i++) {
            if (AsciiString.contentEqualsIgnoreCase(names.get(i), name)) {
                return true;
            }
        }
        return false;
    }

    private static boolean startsWithIgnoreCase(CharSequence s, String prefix) {
        if (s.length() < prefix.length()) {
            return false;
        }
        for (int i = 0; i < prefix.length(); i++) {
            if (Character.toLowerCase(s.charAt(i)) != prefix.charAt(i)) {
                return false;
            }
        }
        return true;
    }
}
