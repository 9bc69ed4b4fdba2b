package io.megallm.proxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Parses a request head where it lies, RFC 9112 §2–§6, strictly where a proxy must be strict:
 * a field name must be a token followed at once by the colon, obsolete line folding and control
 * characters are refused, Content-Length is digits and appears once, a Transfer-Encoding must end
 * in chunked and must not come with a Content-Length (request smuggling). Lines may end in CRLF or
 * in a bare LF, and empty lines before the request line are skipped, as RFC 9112 lets a server do.
 *
 * <p>It replaces Netty's {@code HttpRequestDecoder}, which makes a String of every name and value,
 * validates each again as it enters a hashed header map, and was the proxy's largest single cost
 * per request after the socket calls. Here the head is copied once into a byte[] and fields are
 * positions in it ({@link RequestHeaders}). One parser per connection: it remembers how far it
 * has searched an incomplete head, so a head that trickles in is not searched again from the start.
 */
final class RequestHeadParser {

    static final int MAX_REQUEST_LINE = 8192;
    static final int MAX_HEADER_SECTION = 16 * 1024;

    private final int maxRequestLine;
    private final int maxHeaderSection;
    /** Bytes after the reader index already searched for the head's end without finding it. */
    private int searched;

    RequestHeadParser() {
        this(MAX_REQUEST_LINE, MAX_HEADER_SECTION);
    }

    RequestHeadParser(int maxRequestLine, int maxHeaderSection) {
        this.maxRequestLine = maxRequestLine;
        this.maxHeaderSection = maxHeaderSection;
    }

    /**
     * Parses the head at {@code in}'s reader index and moves the reader index past it; returns
     * null while the head is incomplete, having read nothing but empty lines before it.
     */
    RequestHead parse(ByteBuf in) throws BadRequest {
        int start = in.readerIndex();
        int limit = in.writerIndex();
        // Empty lines before a request line are skipped (RFC 9112 §2.2).
        while (start < limit) {
            byte b = in.getByte(start);
            if (b != '\r' && b != '\n') {
                break;
            }
            start++;
        }
        in.readerIndex(start);
        if (start == limit) {
            searched = 0;
            return null;
        }
        if (!HttpTokens.isTchar(in.getByte(start))) {
            // Not a method: TLS on the plain port, or garbage. No need to wait for a line end.
            throw BadRequest.malformed();
        }
        int firstLf = in.indexOf(start, Math.min(limit, start + maxRequestLine + 2), (byte) '\n');
        if (firstLf < 0) {
            if (limit - start > maxRequestLine + 1) {
                throw uriTooLong();
            }
            return null;
        }
        if (firstLf - start > maxRequestLine + 1) {
            throw uriTooLong();
        }
        int from = Math.max(firstLf, start + searched);
        int lineEnd = -1;
        int end = -1;
        // The head ends at the first empty line: LF then LF, or LF then CR LF.
        while (from < limit) {
            int lf = in.indexOf(from, limit, (byte) '\n');
            if (lf < 0) {
                from = limit;
                break;
            }
            if (lf + 1 < limit && in.getByte(lf + 1) == '\n') {
                end = lf + 2;
                lineEnd = lf;
                break;
            }
            if (lf + 2 < limit && in.getByte(lf + 1) == '\r' && in.getByte(lf + 2) == '\n') {
                end = lf + 3;
                lineEnd = lf;
                break;
            }
            if (lf + 2 >= limit) {
                // The next bytes decide; search again from this line end when they come.
                from = lf;
                break;
            }
            from = lf + 1;
        }
        if (end < 0) {
            if (limit - firstLf > maxHeaderSection + 3) {
                throw withRequestLine(headersTooLarge(), in, start, firstLf);
            }
            searched = from - start;
            return null;
        }
        searched = 0;
        if (lineEnd - firstLf > maxHeaderSection) {
            throw withRequestLine(headersTooLarge(), in, start, firstLf);
        }
        byte[] bytes = new byte[lineEnd - start];
        in.getBytes(start, bytes);
        in.readerIndex(end);
        return parse(bytes, firstLf - start);
    }

    /** {@code bytes}: the request line, then header lines, without the empty line that ends them. */
    private static RequestHead parse(byte[] bytes, int requestLineEnd) throws BadRequest {
        RequestLine line = requestLine(bytes, requestLineEnd);
        try {
            HttpVersion version = version(bytes, line.versionStart, line.end);
            return fields(bytes, requestLineEnd, line.method, line.uri, version);
        } catch (BadRequest e) {
            // The request line was read: the refusal's access line can say what was asked.
            throw e.requestLine(line.method, line.uri);
        }
    }

    /** A request line's method and target, and where its version starts and the line ends. */
    private record RequestLine(HttpMethod method, String uri, int versionStart, int end) { }

    private static RequestLine requestLine(byte[] bytes, int requestLineEnd) throws BadRequest {
        int lineEnd = trimCr(bytes, 0, requestLineEnd);
        int p = 0;
        int methodEnd = tokenEnd(bytes, p, lineEnd);
        if (methodEnd == p || methodEnd >= lineEnd || bytes[methodEnd] != ' ') {
            throw BadRequest.malformed();
        }
        p = skipSpaces(bytes, methodEnd, lineEnd);
        int targetStart = p;
        while (p < lineEnd && bytes[p] != ' ') {
            int c = bytes[p] & 0xff;
            // '#' starts a fragment, which no request target has (RFC 9112 §3.2): a server
            // behind us may read it as the end of the path and resolve what came before it
            // ("/v1/..#") after our check of the path's segments.
            if (c < 0x21 || c == 0x7f || c == '#') {
                throw BadRequest.malformed();
            }
            p++;
        }
        if (p == targetStart || p >= lineEnd) {
            throw BadRequest.malformed();
        }
        int versionStart = skipSpaces(bytes, p, lineEnd);
        HttpMethod method = method(bytes, methodEnd);
        String uri = originForm(new String(bytes, targetStart, skipBack(bytes, targetStart, p) - targetStart,
                StandardCharsets.ISO_8859_1));
        return new RequestLine(method, uri, versionStart, lineEnd);
    }

    /**
     * A refusal of a head too large to read: its request line, when that is one, still tells the
     * access line what was asked (the line ends at {@code firstLf}, within MAX_REQUEST_LINE).
     */
    private static BadRequest withRequestLine(BadRequest e, ByteBuf in, int start, int firstLf) {
        byte[] line = new byte[firstLf - start];
        in.getBytes(start, line);
        try {
            RequestLine l = requestLine(line, line.length);
            return e.requestLine(l.method, l.uri);
        } catch (BadRequest notALine) {
            return e;
        }
    }

    /**
     * The absolute form of a target ({@code http://host/v1/models}, what a client configured to use
     * us as its HTTP proxy sends) as its origin form ({@code /v1/models}): a server must accept it
     * (RFC 9112 §3.2.2), and routing, the path checks and the upstream's head all read the origin
     * form. The authority is dropped: the upstream's Host is ours to set.
     */
    static String originForm(String target) {
        int schemeEnd;
        if (target.regionMatches(true, 0, "http://", 0, 7)) {
            schemeEnd = 7;
        } else if (target.regionMatches(true, 0, "https://", 0, 8)) {
            schemeEnd = 8;
        } else {
            return target;
        }
        for (int i = schemeEnd; i < target.length(); i++) {
            char c = target.charAt(i);
            if (c == '/') {
                return target.substring(i);
            }
            if (c == '?') {
                return "/" + target.substring(i);
            }
        }
        return "/";
    }

    /** The header section, after a request line that was read whole. */
    private static RequestHead fields(byte[] bytes, int requestLineEnd, HttpMethod method, String uri,
                                      HttpVersion version) throws BadRequest {
        int[] fields = new int[64];
        int count = 0;
        long contentLength = -1;
        int transferEncoding = -1;
        boolean close = false;
        boolean keepAliveToken = false;
        boolean expectContinue = false;
        int line = requestLineEnd + 1;
        while (line < bytes.length) {
            byte first = bytes[line];
            if (first == ' ' || first == '\t') {
                // Obsolete line folding: RFC 9112 §5.2 lets a server refuse it, and a proxy must.
                throw BadRequest.malformed();
            }
            int nameEnd = tokenEnd(bytes, line, bytes.length);
            if (nameEnd == line || nameEnd >= bytes.length || bytes[nameEnd] != ':') {
                throw BadRequest.malformed();
            }
            // One pass to the line's end: it finds the end and checks every byte after the colon.
            // A CR is allowed only where it ends the line.
            int lf = nameEnd + 1;
            for (; lf < bytes.length && bytes[lf] != '\n'; lf++) {
                int c = bytes[lf] & 0xff;
                if ((c < 0x20 && c != '\t' && !(c == '\r' && (lf + 1 == bytes.length || bytes[lf + 1] == '\n')))
                        || c == 0x7f) {
                    throw BadRequest.malformed();
                }
            }
            int e = trimCr(bytes, line, lf);
            int v = nameEnd + 1;
            while (v < e && (bytes[v] == ' ' || bytes[v] == '\t')) {
                v++;
            }
            int ve = e;
            while (ve > v && (bytes[ve - 1] == ' ' || bytes[ve - 1] == '\t')) {
                ve--;
            }
            if (4 * count + 4 > fields.length) {
                fields = Arrays.copyOf(fields, fields.length * 2);
            }
            int f = 4 * count++;
            fields[f] = line;
            fields[f + 1] = nameEnd;
            fields[f + 2] = v;
            fields[f + 3] = ve;
            switch (nameEnd - line) {
                case 6 -> expectContinue |= is(bytes, line, nameEnd, "expect") && is(bytes, v, ve, "100-continue");
                case 10 -> {
                    if (is(bytes, line, nameEnd, "connection")) {
                        int tokens = connectionTokens(bytes, v, ve);
                        close |= (tokens & 1) != 0;
                        keepAliveToken |= (tokens & 2) != 0;
                    }
                }
                case 14 -> {
                    if (is(bytes, line, nameEnd, "content-length")) {
                        if (contentLength >= 0) {
                            throw new BadRequest(HttpResponseStatus.BAD_REQUEST, "bad_request",
                                    "A request must carry at most one Content-Length.");
                        }
                        contentLength = contentLength(bytes, v, ve);
                    }
                }
                case 17 -> {
                    if (is(bytes, line, nameEnd, "transfer-encoding")) {
                        if (transferEncoding >= 0) {
                            throw new BadRequest(HttpResponseStatus.NOT_IMPLEMENTED, "transfer_coding_unsupported",
                                    "Only the chunked transfer coding is supported.");
                        }
                        transferEncoding = count - 1;
                    }
                }
                default -> {
                }
            }
            line = lf + 1;
        }
        if (transferEncoding >= 0 && contentLength >= 0) {
            throw BadRequest.smuggling();
        }
        boolean chunked = false;
        if (transferEncoding >= 0) {
            if (version == HttpVersion.HTTP_1_0) {
                // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
                throw new BadRequest(HttpResponseStatus.BAD_REQUEST, "bad_request",
                        "An HTTP/1.0 request must not carry Transfer-Encoding.");
            }
            int f = 4 * transferEncoding;
            int v = fields[f + 2];
            int ve = fields[f + 3];
            if (!endsWithChunked(bytes, v, ve)) {
                // RFC 9112 §6.3: without chunked last, the body's length cannot be known.
                throw new BadRequest(HttpResponseStatus.BAD_REQUEST, "bad_request",
                        "A request's Transfer-Encoding must end in chunked.");
            }
            if (!is(bytes, v, ve, "chunked")) {
                throw new BadRequest(HttpResponseStatus.NOT_IMPLEMENTED, "transfer_coding_unsupported",
                        "Only the chunked transfer coding is supported.");
            }
            chunked = true;
        }
        boolean keepAlive = version == HttpVersion.HTTP_1_1 ? !close : keepAliveToken && !close;
        return new RequestHead(method, uri, version, new RequestHeaders(bytes, fields, count), keepAlive,
                contentLength, chunked, expectContinue && version == HttpVersion.HTTP_1_1);
    }

    private static HttpVersion version(byte[] b, int p, int end) throws BadRequest {
        if (end - p != 8 || b[p] != 'H' || b[p + 1] != 'T' || b[p + 2] != 'T' || b[p + 3] != 'P' || b[p + 4] != '/'
                || !digit(b[p + 5]) || b[p + 6] != '.' || !digit(b[p + 7])) {
            throw BadRequest.malformed();
        }
        if (b[p + 5] != '1') {
            throw new BadRequest(HttpResponseStatus.HTTP_VERSION_NOT_SUPPORTED, "http_version_not_supported",
                    "This proxy speaks HTTP/1.1 and HTTP/1.0.");
        }
        // A higher minor version is understood as 1.1 (RFC 9110 §6.2).
        return b[p + 7] == '0' ? HttpVersion.HTTP_1_0 : HttpVersion.HTTP_1_1;
    }

    private static HttpMethod method(byte[] b, int end) {
        switch (end) {
            case 3:
                if (b[0] == 'G' && b[1] == 'E' && b[2] == 'T') {
                    return HttpMethod.GET;
                }
                if (b[0] == 'P' && b[1] == 'U' && b[2] == 'T') {
                    return HttpMethod.PUT;
                }
                break;
            case 4:
                if (b[0] == 'P' && b[1] == 'O' && b[2] == 'S' && b[3] == 'T') {
                    return HttpMethod.POST;
                }
                if (b[0] == 'H' && b[1] == 'E' && b[2] == 'A' && b[3] == 'D') {
                    return HttpMethod.HEAD;
                }
                break;
            default:
                break;
        }
        // Netty returns its constants for the other standard methods, a new instance otherwise.
        return HttpMethod.valueOf(new String(b, 0, end, StandardCharsets.US_ASCII));
    }

    /** Bit 1: the list names "close"; bit 2: it names "keep-alive". */
    private static int connectionTokens(byte[] b, int v, int ve) {
        int bits = 0;
        int p = v;
        while (p < ve) {
            int t = p;
            while (p < ve && b[p] != ',') {
                p++;
            }
            int s = t;
            int e = p;
            while (s < e && (b[s] == ' ' || b[s] == '\t')) {
                s++;
            }
            while (e > s && (b[e - 1] == ' ' || b[e - 1] == '\t')) {
                e--;
            }
            if (is(b, s, e, "close")) {
                bits |= 1;
            } else if (is(b, s, e, "keep-alive")) {
                bits |= 2;
            }
            p++;
        }
        return bits;
    }

    private static long contentLength(byte[] b, int v, int ve) throws BadRequest {
        if (v == ve) {
            throw invalidContentLength();
        }
        long n = 0;
        for (int k = v; k < ve; k++) {
            if (!digit(b[k])) {
                throw invalidContentLength();
            }
            // Any length past this is refused as too large long before it could overflow.
            n = Math.min(n * 10 + (b[k] - '0'), Long.MAX_VALUE / 16);
        }
        return n;
    }

    private static BadRequest invalidContentLength() {
        return new BadRequest(HttpResponseStatus.BAD_REQUEST, "bad_request",
                "Content-Length must be one non-negative decimal number.");
    }

    private static boolean endsWithChunked(byte[] b, int v, int ve) {
        int comma = ve - 1;
        while (comma >= v && b[comma] != ',') {
            comma--;
        }
        int s = comma + 1;
        while (s < ve && (b[s] == ' ' || b[s] == '\t')) {
            s++;
        }
        return is(b, s, ve, "chunked");
    }

    private static BadRequest uriTooLong() {
        return new BadRequest(HttpResponseStatus.REQUEST_URI_TOO_LONG, "uri_too_long", "The request line is too long.");
    }

    private static BadRequest headersTooLarge() {
        return new BadRequest(HttpResponseStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large",
                "The request headers are too large.");
    }

    private static int tokenEnd(byte[] b, int p, int end) {
        while (p < end && HttpTokens.isTchar(b[p])) {
            p++;
        }
        return p;
    }

    private static int skipSpaces(byte[] b, int p, int end) {
        while (p < end && b[p] == ' ') {
            p++;
        }
        return p;
    }

    /** The end of the target whose spaces end before {@code p}. */
    private static int skipBack(byte[] b, int start, int p) {
        while (p > start && b[p - 1] == ' ') {
            p--;
        }
        return p;
    }

    private static int trimCr(byte[] b, int start, int lf) {
        return lf > start && b[lf - 1] == '\r' ? lf - 1 : lf;
    }

    private static boolean digit(byte c) {
        return c >= '0' && c <= '9';
    }

    private static boolean is(byte[] b, int s, int e, String lower) {
        return RequestHeaders.equalsIgnoreCase(b, s, e, lower);
    }
}
