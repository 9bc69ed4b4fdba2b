package io.megallm.proxy.relay;

import io.megallm.proxy.http.Exchange;
import io.megallm.proxy.http.FieldNameView;
import io.megallm.proxy.http.InboundRequest;
import io.megallm.proxy.http.ReceivedHeaders;
import io.megallm.proxy.http.RequestHeaders;
import io.megallm.proxy.upstream.UpstreamTarget;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.util.AsciiString;

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
    private static final AsciiString X_API_KEY = AsciiString.cached("x-api-key");
    private static final AsciiString API_KEY = AsciiString.cached("api-key");
    private static final AsciiString OPENAI_ORGANIZATION = AsciiString.cached("openai-organization");
    private static final AsciiString OPENAI_PROJECT = AsciiString.cached("openai-project");
    /**
     * What the proxy accepts from the upstream, whatever the client accepts: tokens are read from
     * the answer's bytes as they pass (contract §13) and a relayed rejection is searched for the
     * pool key (§9); neither can be done in a compressed body, and a client asking for gzip (the
     * OpenAI SDKs do, by default) would otherwise go uncounted and past its token limits.
     */
    static final String IDENTITY = "identity";

    private HeaderRewriter() {
    }

    /**
     * The upstream request head as bytes, request line and headers, all but the per-attempt
     * {@code Authorization} line and the blank line that ends the head: built once per request and
     * copied into each attempt's buffer. The client's header lines that cross go out as the bytes
     * they came in, copied by range from the parsed head. The body is sent whole with a
     * Content-Length, so the client's framing headers are not carried over.
     */
    public static byte[] upstreamHead(InboundRequest request, UpstreamTarget target, String uri) {
        return upstreamHead(request, target, "", uri);
    }

    /**
     * As {@link #upstreamHead(InboundRequest, UpstreamTarget, String)} for the target
     * {@code prefix + rest}, written in place: the base URL's path and the client's path after
     * {@code /v1}, without a String joining them on every request.
     */
    public static byte[] upstreamHead(InboundRequest request, UpstreamTarget target, String prefix, String rest) {
        return upstreamHead(request, target, prefix, rest, null);
    }

    /**
     * As {@link #upstreamHead(InboundRequest, UpstreamTarget, String, String)}, with a
     * {@code Proxy-Authorization} line for a forwarding HTTP proxy when {@code proxyAuthorization}
     * is not null. The client's own {@code Proxy-*} lines never cross (hop-by-hop).
     */
    public static byte[] upstreamHead(InboundRequest request, UpstreamTarget target, String prefix, String rest,
                                      String proxyAuthorization) {
        RequestHeaders in = request.headers();
        List<String> connectionNamed = connectionTokens(in.getAll(HttpHeaderNames.CONNECTION));
        int n = in.size();
        boolean[] keep = new boolean[n];
        String method = request.method().name();
        String host = target.hostHeader();
        int length = request.body().readableBytes();
        String contentLength = length > 0 || methodHasBody(request.method()) ? Integer.toString(length) : null;
        // An X-Forwarded-For named in Connection is hop-by-hop like any other: only our hop is sent.
        String forwardedFor = named(connectionNamed, X_FORWARDED_FOR) ? request.clientIp()
                : forwardedFor(in, request.clientIp());
        String id = request.requestId();
        // A base URL without a path and a client path of just /v1 ("", "?x=1"): the origin form
        // starts with "/" all the same (RFC 9112 3.2.1); servers refuse "POST ?x=1 HTTP/1.1".
        boolean slash = prefix.isEmpty() && (rest.isEmpty() || rest.charAt(0) != '/');
        int size = method.length() + 1 + (slash ? 1 : 0) + prefix.length() + rest.length() + " HTTP/1.1\r\n".length()
                + lineLength(HttpHeaderNames.HOST, host) + lineLength(Exchange.X_REQUEST_ID, id);
        FieldNameView view = in.nameView();
        for (int i = 0; i < n; i++) {
            if (!in.removed(i)) {
                CharSequence name = view.at(i);
                if (!isHopByHop(name) && !setPerAttempt(name) && !clientAccount(name) && !named(connectionNamed, name)) {
                    keep[i] = true;
                    size += in.lineLength(i);
                }
            }
        }
        if (contentLength != null) {
            size += lineLength(HttpHeaderNames.CONTENT_LENGTH, contentLength);
        }
        if (forwardedFor != null) {
            size += lineLength(X_FORWARDED_FOR, forwardedFor);
        }
        size += lineLength(HttpHeaderNames.ACCEPT_ENCODING, IDENTITY);
        if (proxyAuthorization != null) {
            size += lineLength(HttpHeaderNames.PROXY_AUTHORIZATION, proxyAuthorization);
        }
        byte[] out = new byte[size];
        int at = text(method, out, 0);
        out[at++] = ' ';
        if (slash) {
            out[at++] = '/';
        }
        at = text(prefix, out, at);
        at = text(rest, out, at);
        at = text(" HTTP/1.1\r\n", out, at);
        at = line(HttpHeaderNames.HOST, host, out, at);
        for (int i = 0; i < n; i++) {
            if (keep[i]) {
                at = in.writeLine(i, out, at);
            }
        }
        if (contentLength != null) {
            at = line(HttpHeaderNames.CONTENT_LENGTH, contentLength, out, at);
        }
        if (forwardedFor != null) {
            at = line(X_FORWARDED_FOR, forwardedFor, out, at);
        }
        at = line(HttpHeaderNames.ACCEPT_ENCODING, IDENTITY, out, at);
        if (proxyAuthorization != null) {
            at = line(HttpHeaderNames.PROXY_AUTHORIZATION, proxyAuthorization, out, at);
        }
        line(Exchange.X_REQUEST_ID, id, out, at);
        return out;
    }

    /** The X-Forwarded-For list with the client's address last, or null without an address. */
    private static String forwardedFor(RequestHeaders in, String ip) {
        if (ip == null) {
            return null;
        }
        int first = in.indexOf(X_FORWARDED_FOR, 0);
        if (first < 0) {
            return ip;
        }
        StringBuilder b = new StringBuilder(64);
        // Several X-Forwarded-For lines are one list (RFC 9110 §5.3); keep them all, in order.
        for (String hop : in.getAll(X_FORWARDED_FOR)) {
            if (!hop.isBlank()) {
                b.append(hop.strip()).append(", ");
            }
        }
        return b.append(ip).toString();
    }

    private static int lineLength(CharSequence name, String value) {
        return name.length() + 2 + value.length() + 2;
    }

    private static int line(CharSequence name, String value, byte[] out, int at) {
        at = text(name, out, at);
        out[at++] = ':';
        out[at++] = ' ';
        at = text(value, out, at);
        out[at++] = '\r';
        out[at++] = '\n';
        return at;
    }

    /** One byte per char: names and values came in as bytes and leave as the same bytes. */
    private static int text(CharSequence s, byte[] out, int at) {
        for (int i = 0; i < s.length(); i++) {
            out[at++] = (byte) s.charAt(i);
        }
        return at;
    }

    /** Removes hop-by-hop headers from a response about to be relayed, in place. */
    public static void stripResponse(HttpHeaders headers) {
        List<String> connectionNamed = connectionTokens(headers.getAll(HttpHeaderNames.CONNECTION));
        if (headers instanceof ReceivedHeaders received) {
            // An upstream's answer as received: its names are read in place, no entry per field.
            received.removeIf(name -> isHopByHop(name) || named(connectionNamed, name));
            return;
        }
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

    /** Request headers the proxy sets itself for every request (or drops: Expect), by length first. */
    private static boolean setPerAttempt(CharSequence name) {
        return switch (name.length()) {
            case 4 -> AsciiString.contentEqualsIgnoreCase(name, HttpHeaderNames.HOST);
            case 6 -> AsciiString.contentEqualsIgnoreCase(name, HttpHeaderNames.EXPECT);
            case 12 -> AsciiString.contentEqualsIgnoreCase(name, Exchange.X_REQUEST_ID);
            case 13 -> AsciiString.contentEqualsIgnoreCase(name, HttpHeaderNames.AUTHORIZATION);
            case 14 -> AsciiString.contentEqualsIgnoreCase(name, HttpHeaderNames.CONTENT_LENGTH);
            case 15 -> AsciiString.contentEqualsIgnoreCase(name, X_FORWARDED_FOR)
                    || AsciiString.contentEqualsIgnoreCase(name, HttpHeaderNames.ACCEPT_ENCODING);
            case 17 -> AsciiString.contentEqualsIgnoreCase(name, HttpHeaderNames.TRANSFER_ENCODING);
            default -> false;
        };
    }

    /**
     * The client's own credentials and account headers (contract §6). A pool key belongs to its own
     * account: a foreign organisation or project header would make a healthy key answer 401/403 and
     * be taken out of the pool, and a client's key has no business upstream.
     */
    static boolean clientAccount(CharSequence name) {
        return switch (name.length()) {
            case 7 -> AsciiString.contentEqualsIgnoreCase(name, API_KEY);
            case 9 -> AsciiString.contentEqualsIgnoreCase(name, X_API_KEY);
            case 14 -> AsciiString.contentEqualsIgnoreCase(name, OPENAI_PROJECT);
            case 19 -> AsciiString.contentEqualsIgnoreCase(name, OPENAI_ORGANIZATION);
            default -> false;
        };
    }

    private static boolean methodHasBody(HttpMethod method) {
        return method.equals(HttpMethod.POST) || method.equals(HttpMethod.PUT) || method.equals(HttpMethod.PATCH);
    }

    private static List<String> connectionTokens(List<String> values) {
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
