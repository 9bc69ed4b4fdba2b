package io.megallm.proxy.upstream;

import io.megallm.proxy.http.HttpTokens;
import io.megallm.proxy.http.ReceivedHeaders;
import io.megallm.proxy.http.RequestHeaders;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.handler.codec.http.DefaultHttpHeadersFactory;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.EmptyHttpHeaders;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpHeadersFactory;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.util.AsciiString;
import io.netty.util.ByteProcessor;

import java.util.Arrays;

/**
 * Reads upstream responses off the connection's bytes. The head becomes a Netty
 * {@link HttpResponse} (once per response); the body never becomes objects: it goes on as the
 * buffers the socket filled. A chunked body goes either exactly as received, chunk framing
 * included (for a client that gets the same framing: nothing to decode, re-encode or
 * allocate per chunk), or as its payload only (for error answers that are kept, and for
 * HTTP/1.0 clients). The last chunk and the trailers are never passed raw: they come as the
 * end of the response, so the client side writes its own terminator.
 *
 * <p>Interim 1xx answers are skipped. One response at a time: bytes after the end of a
 * response are a protocol error, since requests are never pipelined upstream.
 */
final class ResponseParser {

    /** The largest response head (and trailer section) accepted. */
    static final int MAX_HEAD = 64 * 1024;

    private static final HttpHeadersFactory TRAILERS = DefaultHttpHeadersFactory.trailersFactory().withValidation(false);
    private static final AsciiString CHUNKED = AsciiString.cached("chunked");

    /** Where the parsed response goes. */
    interface Sink {

        /**
         * A final response head. Return true to get a chunked body exactly as received (chunk
         * framing included, last chunk excluded), false for its payload only.
         */
        boolean onHead(HttpResponse head, boolean chunked);

        /** Body bytes; ownership passes to the sink. */
        void onBody(ByteBuf bytes);

        /** The response ended; {@code trailers} is empty when there were none. */
        void onEnd(HttpHeaders trailers);

        /**
         * Bytes follow the end of the response just read: told before {@link #onEnd}, since the
         * connection, whose parse then fails, must not be handed to another request at the end.
         */
        default void onBytesAfterEnd() {
        }
    }

    private enum State {
        IDLE, HEAD, LENGTH, UNTIL_CLOSE, CHUNK_SIZE, CHUNK_EXT, CHUNK_SIZE_LF, CHUNK_DATA, CHUNK_DATA_CR,
        CHUNK_DATA_LF, TRAILERS, DONE
    }

    private final Sink sink;
    /** {@link #MAX_HEAD}, except in the fuzz test, which needs a limit its small inputs reach. */
    private final int maxHead;
    private State state = State.IDLE;
    private boolean headRequest;
    private boolean raw;
    private ByteBuf pending;
    private long remaining;
    private int sizeDigits;
    private boolean lastChunk;
    private int heldZeros;
    private ByteBuf trailerBytes;
    private int trailerLineLength;
    // Per read, while scanning chunk framing.
    private int passEnd;
    private int lineStart;
    private int zerosFirst;

    ResponseParser(Sink sink) {
        this(sink, MAX_HEAD);
    }

    ResponseParser(Sink sink, int maxHead) {
        this.sink = sink;
        this.maxHead = maxHead;
    }

    /** Expects the response to a new request; {@code headRequest}: a response without a body. */
    void reset(boolean headRequest) {
        this.headRequest = headRequest;
        releaseBuffers();
        state = State.HEAD;
    }

    /** True while a response is being read (its head or body has started or is awaited). */
    boolean inResponse() {
        return state != State.IDLE && state != State.DONE;
    }

    /** True when the body runs until the connection closes, so a close is its clean end. */
    boolean endsAtClose() {
        return state == State.UNTIL_CLOSE;
    }

    /** The connection closed: ends a body that runs until the close, if that is what was read. */
    boolean closed() {
        if (state == State.UNTIL_CLOSE) {
            state = State.DONE;
            sink.onEnd(EmptyHttpHeaders.INSTANCE);
            return true;
        }
        releaseBuffers();
        return false;
    }

    void releaseBuffers() {
        if (pending != null) {
            pending.release();
            pending = null;
        }
        if (trailerBytes != null) {
            trailerBytes.release();
            trailerBytes = null;
        }
    }

    /**
     * Reads {@code in}, whose ownership passes to the parser.
     *
     * @throws MalformedResponseException on anything that is not a valid HTTP/1.x response;
     *         the connection is then beyond use
     */
    void feed(ByteBuf in, ByteBufAllocator alloc) {
        try {
            if (state == State.HEAD || state == State.IDLE || state == State.DONE) {
                if (state != State.HEAD) {
                    throw new MalformedResponseException("bytes from the upstream outside of a response");
                }
                if (pending != null) {
                    pending.writeBytes(in);
                    in.release();
                    in = pending;
                    pending = null;
                }
                if (!readHeads(in)) {
                    if (in.readableBytes() > maxHead) {
                        throw new MalformedResponseException("response head larger than " + maxHead + " bytes");
                    }
                    pending = alloc.heapBuffer(Math.max(256, in.readableBytes() * 2));
                    pending.writeBytes(in);
                    return;
                }
            }
            ByteBuf body = in;
            in = null;
            readBody(body);
        } finally {
            if (in != null) {
                in.release();
            }
        }
    }

    // ---- head ---------------------------------------------------------------------------------

    /** Reads heads until a final one; false when the buffer ends inside a head. */
    private boolean readHeads(ByteBuf in) {
        while (true) {
            int start = in.readerIndex();
            int end = headEnd(in, start, in.writerIndex());
            if (end < 0) {
                return false;
            }
            if (end - start > maxHead) {
                // The same limit as for a head still arriving (feed): without this check a head
                // that came complete in one read could be up to a read larger than the limit.
                throw new MalformedResponseException("response head larger than " + maxHead + " bytes");
            }
            byte[] head = new byte[end - start];
            in.getBytes(start, head);
            in.readerIndex(end);
            if (parseHead(head, in.isReadable())) {
                return true;
            }
            if (!in.isReadable()) {
                return false;
            }
        }
    }

    /** The index after the empty line that ends the head, or -1. */
    private static int headEnd(ByteBuf in, int from, int to) {
        int i = from;
        while (i < to) {
            int lf = in.forEachByte(i, to - i, ByteProcessor.FIND_LF);
            if (lf < 0) {
                return -1;
            }
            if (lf + 1 < to) {
                byte next = in.getByte(lf + 1);
                if (next == '\n') {
                    return lf + 2;
                }
                if (next == '\r') {
                    if (lf + 2 >= to) {
                        return -1;
                    }
                    if (in.getByte(lf + 2) == '\n') {
                        return lf + 3;
                    }
                }
            }
            i = lf + 1;
        }
        return -1;
    }

    /**
     * Parses one head; false for an interim (1xx) answer, which is dropped. {@code more}: bytes
     * follow the head in this read.
     */
    private boolean parseHead(byte[] h, boolean more) {
        int eol = lineEnd(h, 0);
        int lineLength = trimCr(h, 0, eol);
        HttpVersion version = version(h, lineLength);
        if (lineLength < 12 || h[8] != ' ' || (lineLength > 12 && h[12] != ' ')) {
            throw new MalformedResponseException("malformed status line");
        }
        int code = digit(h[9]) * 100 + digit(h[10]) * 10 + digit(h[11]);
        if (code < 100) {
            throw new MalformedResponseException("malformed status code");
        }
        if (code < 200) {
            if (code == 101) {
                throw new MalformedResponseException("unexpected protocol switch");
            }
            return false;
        }
        HttpResponseStatus status = status(code, h, 13, lineLength);
        int pos = eol + 1;
        // A field line is rarely under 16 bytes: sized from the head's length, grown if not,
        // rather than a second pass over the head to count its lines.
        int[] fields = new int[4 * Math.max(4, Math.min(32, h.length >> 4))];
        int count = 0;
        long contentLength = -1;
        boolean lengthRepeated = false;
        boolean chunked = false;
        boolean hasTransferEncoding = false;
        while (pos < h.length) {
            int end = lineEnd(h, pos);
            int to = trimCr(h, pos, end);
            if (to == pos) {
                break;
            }
            int colon = headerName(h, pos, to);
            int vs = skipWhitespace(h, colon + 1, to);
            int ve = trimWhitespace(h, vs, to);
            for (int i = vs; i < ve; i++) {
                if (h[i] == 0 || h[i] == '\r') {
                    throw new MalformedResponseException("forbidden character in a header value");
                }
            }
            // Only the two framing fields are read here; the others stay bytes until asked for.
            if (RequestHeaders.equalsIgnoreCase(h, pos, colon, HttpHeaderNames.CONTENT_LENGTH)) {
                lengthRepeated |= contentLength >= 0 || indexOf(h, vs, ve, (byte) ',') >= 0;
                contentLength = contentLength(new AsciiString(h, vs, ve - vs, false), contentLength);
            } else if (RequestHeaders.equalsIgnoreCase(h, pos, colon, HttpHeaderNames.TRANSFER_ENCODING)) {
                hasTransferEncoding = true;
                chunked = endsWithChunked(new AsciiString(h, vs, ve - vs, false));
            }
            int f = 4 * count++;
            if (f == fields.length) {
                fields = Arrays.copyOf(fields, 2 * fields.length);
            }
            fields[f] = pos;
            fields[f + 1] = colon;
            fields[f + 2] = vs;
            fields[f + 3] = ve;
            pos = end + 1;
        }
        HttpHeaders headers = new ReceivedHeaders(h, fields, count);
        if (lengthRepeated && !hasTransferEncoding) {
            // Equal values repeated or listed ("2, 2"): accepted, but passed on as one field
            // (RFC 9110 8.6); several make strict client parsers (Node's llhttp) refuse the answer.
            headers.set(HttpHeaderNames.CONTENT_LENGTH, Long.toString(contentLength));
        }
        HttpResponse response = new DefaultHttpResponse(version, status, headers);
        if (headRequest || code == 204 || code == 304) {
            state = State.DONE;
            sink.onHead(response, false);
            if (more) {
                sink.onBytesAfterEnd();
            }
            sink.onEnd(EmptyHttpHeaders.INSTANCE);
            return true;
        }
        if (hasTransferEncoding) {
            // Transfer-Encoding wins over Content-Length (RFC 9112 6.3); the length is not passed on.
            if (contentLength >= 0) {
                // Both framings: a sign of response splitting (RFC 9112 6.3). This answer is read
                // by its chunks, but the connection is not trusted with another request.
                headers.add(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
            }
            headers.remove(HttpHeaderNames.CONTENT_LENGTH);
            if (chunked) {
                state = State.CHUNK_SIZE;
                sizeDigits = 0;
                remaining = 0;
                lastChunk = false;
                heldZeros = 0;
            } else {
                state = State.UNTIL_CLOSE;
            }
        } else if (contentLength >= 0) {
            state = State.LENGTH;
            remaining = contentLength;
        } else {
            state = State.UNTIL_CLOSE;
        }
        raw = sink.onHead(response, chunked);
        if (state == State.LENGTH && remaining == 0) {
            state = State.DONE;
            if (more) {
                sink.onBytesAfterEnd();
            }
            sink.onEnd(EmptyHttpHeaders.INSTANCE);
        }
        return true;
    }

    private static HttpVersion version(byte[] h, int lineLength) {
        if (lineLength >= 8 && h[0] == 'H' && h[1] == 'T' && h[2] == 'T' && h[3] == 'P' && h[4] == '/'
                && h[5] == '1' && h[6] == '.') {
            if (h[7] == '1') {
                return HttpVersion.HTTP_1_1;
            }
            if (h[7] == '0') {
                return HttpVersion.HTTP_1_0;
            }
        }
        throw new MalformedResponseException("not an HTTP/1.x response");
    }

    private static HttpResponseStatus status(int code, byte[] h, int from, int to) {
        HttpResponseStatus standard = HttpResponseStatus.valueOf(code);
        String phrase = standard.reasonPhrase();
        int length = Math.max(0, to - from);
        for (int i = from; i < from + length; i++) {
            // A bare CR (one not ending the line) would otherwise reach Netty's HttpResponseStatus,
            // which throws IllegalArgumentException: not the parser's one rejection type.
            if (h[i] == 0 || h[i] == '\r') {
                throw new MalformedResponseException("forbidden character in the reason phrase");
            }
        }
        if (phrase.length() == length) {
            boolean same = true;
            for (int i = 0; i < length && same; i++) {
                same = phrase.charAt(i) == h[from + i];
            }
            if (same) {
                return standard;
            }
        }
        return new HttpResponseStatus(code, new String(h, from, length, java.nio.charset.StandardCharsets.ISO_8859_1));
    }

    private static int lineEnd(byte[] h, int from) {
        for (int i = from; i < h.length; i++) {
            if (h[i] == '\n') {
                return i;
            }
        }
        return h.length;
    }

    private static int skipWhitespace(byte[] h, int from, int to) {
        while (from < to && (h[from] == ' ' || h[from] == '\t')) {
            from++;
        }
        return from;
    }

    private static int trimWhitespace(byte[] h, int from, int to) {
        while (to > from && (h[to - 1] == ' ' || h[to - 1] == '\t')) {
            to--;
        }
        return to;
    }

    private static int trimCr(byte[] h, int from, int lf) {
        return lf > from && h[lf - 1] == '\r' ? lf - 1 : lf;
    }

    /** Checks the name of a header line and returns the index of its colon. */
    private static int headerName(byte[] h, int from, int to) {
        int i = from;
        while (i < to && h[i] != ':') {
            int b = h[i] & 0xff;
            if (!HttpTokens.isTchar(b)) {
                throw new MalformedResponseException(b == ' ' || b == '\t'
                        ? "whitespace in or before a header name" : "forbidden character in a header name");
            }
            i++;
        }
        if (i == from || i == to) {
            throw new MalformedResponseException("malformed header line");
        }
        return i;
    }

    private static int digit(byte b) {
        if (b < '0' || b > '9') {
            throw new MalformedResponseException("malformed status code");
        }
        return b - '0';
    }

    /** One Content-Length value (a list of equal values is one value); conflicting values fail. */
    private static long contentLength(AsciiString value, long previous) {
        long result = previous;
        int i = 0;
        int n = value.length();
        while (i < n) {
            long v = 0;
            int digits = 0;
            while (i < n && value.byteAt(i) >= '0' && value.byteAt(i) <= '9') {
                if (++digits > 18) {
                    throw new MalformedResponseException("Content-Length too large");
                }
                v = v * 10 + (value.byteAt(i) - '0');
                i++;
            }
            while (i < n && (value.byteAt(i) == ' ' || value.byteAt(i) == '\t')) {
                i++;
            }
            if (digits == 0 || (i < n && value.byteAt(i) != ',')) {
                throw new MalformedResponseException("malformed Content-Length");
            }
            if (result >= 0 && result != v) {
                throw new MalformedResponseException("conflicting Content-Length values");
            }
            result = v;
            i++;
            while (i < n && (value.byteAt(i) == ' ' || value.byteAt(i) == '\t')) {
                i++;
            }
        }
        return result;
    }

    private static int indexOf(byte[] h, int from, int to, byte b) {
        for (int i = from; i < to; i++) {
            if (h[i] == b) {
                return i;
            }
        }
        return -1;
    }

    /** Whether the last transfer coding is chunked. */
    private static boolean endsWithChunked(AsciiString value) {
        int n = value.length();
        int start = n - CHUNKED.length();
        if (start < 0 || !value.regionMatches(true, start, CHUNKED, 0, CHUNKED.length())) {
            return false;
        }
        int i = start - 1;
        while (i >= 0 && (value.byteAt(i) == ' ' || value.byteAt(i) == '\t')) {
            i--;
        }
        return i < 0 || value.byteAt(i) == ',';
    }

    // ---- body ---------------------------------------------------------------------------------

    /** Reads body bytes; owns {@code in} whatever happens. */
    private void readBody(ByteBuf in) {
        int from = in.readerIndex();
        int to = in.writerIndex();
        switch (state) {
            case DONE -> {
                in.release();
                if (from < to) {
                    throw new MalformedResponseException("bytes after the end of the response");
                }
            }
            case LENGTH -> {
                int n = (int) Math.min(remaining, to - from);
                remaining -= n;
                boolean end = remaining == 0;
                if (end) {
                    state = State.DONE;
                }
                emit(in, from, from + n, 0);
                if (end) {
                    if (from + n < to) {
                        sink.onBytesAfterEnd();
                    }
                    sink.onEnd(EmptyHttpHeaders.INSTANCE);
                    if (from + n < to) {
                        throw new MalformedResponseException("bytes after the end of the response");
                    }
                }
            }
            case UNTIL_CLOSE -> emit(in, from, to, 0);
            default -> readChunked(in, from, to);
        }
    }

    /** Hands {@code in}, narrowed to [from, to), to the sink, with any held-back zeros first. */
    private void emit(ByteBuf in, int from, int to, int zeros) {
        if (zeros > 0) {
            // Zeros held back at the end of the last read turned out to start a size ("0" then "1a").
            byte[] z = new byte[zeros];
            java.util.Arrays.fill(z, (byte) '0');
            sink.onBody(Unpooled.wrappedBuffer(z));
        }
        if (from < to) {
            in.setIndex(from, to);
            sink.onBody(in);
        } else {
            in.release();
        }
    }

    private void readChunked(ByteBuf in, int from, int to) {
        passEnd = lastChunk ? from : -1;
        lineStart = sizeDigits > 0 ? from : -1;
        zerosFirst = 0;
        int i;
        try {
            i = scanChunks(in, from, to);
        } catch (RuntimeException e) {
            in.release();
            throw e;
        }
        if (state == State.CHUNK_SIZE && sizeDigits > 0 && remaining == 0 && passEnd < 0) {
            // The read ends in "0", "00", …: maybe the last chunk, maybe the start of "0a". Hold them.
            heldZeros += lineStart >= 0 ? i - lineStart : 0;
            passEnd = lineStart >= 0 ? lineStart : from;
        }
        boolean ended = state == State.DONE;
        if (raw) {
            emit(in, from, passEnd < 0 ? i : passEnd, zerosFirst);
        } else {
            in.release();
        }
        if (ended) {
            HttpHeaders trailers = trailerHeaders();
            if (i < to) {
                sink.onBytesAfterEnd();
            }
            sink.onEnd(trailers);
            if (i < to) {
                throw new MalformedResponseException("bytes after the end of the response");
            }
        }
    }

    /**
     * Walks the chunk framing of one read; returns the index after what was read. Sets
     * {@code passEnd} where the last chunk begins (nothing from there on is passed raw).
     */
    private int scanChunks(ByteBuf in, int from, int to) {
        int i = from;
        while (i < to && state != State.DONE) {
            switch (state) {
                case CHUNK_SIZE -> {
                    byte b = in.getByte(i);
                    int hex = hex(b);
                    if (hex >= 0) {
                        if (sizeDigits == 0) {
                            lineStart = i;
                        }
                        if (remaining > (Long.MAX_VALUE >> 5)) {
                            throw new MalformedResponseException("chunk size too large");
                        }
                        if (hex != 0 && remaining == 0 && heldZeros > 0) {
                            // The held zeros were leading zeros of a real size after all.
                            zerosFirst = heldZeros;
                            heldZeros = 0;
                        }
                        remaining = remaining * 16 + hex;
                        sizeDigits++;
                        i++;
                        break;
                    }
                    if (sizeDigits == 0) {
                        throw new MalformedResponseException("malformed chunk size");
                    }
                    if (remaining == 0) {
                        // The last chunk: nothing of it is passed on, the client side writes its own.
                        lastChunk = true;
                        heldZeros = 0;
                        if (passEnd < 0) {
                            passEnd = lineStart >= 0 ? lineStart : from;
                        }
                    }
                    if (b == '\r') {
                        state = State.CHUNK_SIZE_LF;
                    } else if (b == ';' || b == ' ' || b == '\t') {
                        state = State.CHUNK_EXT;
                    } else {
                        throw new MalformedResponseException("malformed chunk size");
                    }
                    i++;
                }
                case CHUNK_EXT -> {
                    int cr = in.forEachByte(i, to - i, ByteProcessor.FIND_CR);
                    if (cr < 0) {
                        i = to;
                    } else {
                        state = State.CHUNK_SIZE_LF;
                        i = cr + 1;
                    }
                }
                case CHUNK_SIZE_LF -> {
                    if (in.getByte(i) != '\n') {
                        throw new MalformedResponseException("malformed chunk size line");
                    }
                    i++;
                    sizeDigits = 0;
                    lineStart = -1;
                    if (lastChunk) {
                        state = State.TRAILERS;
                        trailerLineLength = 0;
                    } else {
                        state = State.CHUNK_DATA;
                    }
                }
                case CHUNK_DATA -> {
                    int n = (int) Math.min(remaining, to - i);
                    if (!raw && n > 0) {
                        sink.onBody(in.retainedSlice(i, n));
                    }
                    remaining -= n;
                    i += n;
                    if (remaining == 0) {
                        state = State.CHUNK_DATA_CR;
                    }
                }
                case CHUNK_DATA_CR -> {
                    if (in.getByte(i) != '\r') {
                        throw new MalformedResponseException("chunk data longer than its size");
                    }
                    i++;
                    state = State.CHUNK_DATA_LF;
                }
                case CHUNK_DATA_LF -> {
                    if (in.getByte(i) != '\n') {
                        throw new MalformedResponseException("chunk data longer than its size");
                    }
                    i++;
                    state = State.CHUNK_SIZE;
                }
                case TRAILERS -> i = readTrailers(in, i, to);
                default -> throw new IllegalStateException(state.name());
            }
        }
        return i;
    }

    /** Reads trailer lines up to the empty line; returns the index after what was read. */
    private int readTrailers(ByteBuf in, int i, int to) {
        while (i < to) {
            byte b = in.getByte(i);
            if (b == '\n') {
                i++;
                if (trailerLineLength == 0) {
                    state = State.DONE;
                    return i;
                }
                trailerLineLength = 0;
                appendTrailer(b);
                continue;
            }
            if (b != '\r') {
                trailerLineLength++;
            }
            appendTrailer(b);
            i++;
        }
        return i;
    }

    private void appendTrailer(byte b) {
        if (b == '\r' && trailerLineLength == 0) {
            return;
        }
        if (trailerBytes == null) {
            trailerBytes = Unpooled.buffer(128);
        }
        if (trailerBytes.readableBytes() >= maxHead) {
            throw new MalformedResponseException("trailers larger than " + maxHead + " bytes");
        }
        trailerBytes.writeByte(b);
    }

    private HttpHeaders trailerHeaders() {
        if (trailerBytes == null) {
            return EmptyHttpHeaders.INSTANCE;
        }
        byte[] t = new byte[trailerBytes.readableBytes()];
        trailerBytes.getBytes(trailerBytes.readerIndex(), t);
        trailerBytes.release();
        trailerBytes = null;
        HttpHeaders trailers = TRAILERS.newHeaders();
        int pos = 0;
        while (pos < t.length) {
            int end = lineEnd(t, pos);
            int to = trimCr(t, pos, end);
            if (to > pos) {
                int colon = headerName(t, pos, to);
                int vs = skipWhitespace(t, colon + 1, to);
                int ve = trimWhitespace(t, vs, to);
                for (int i = vs; i < ve; i++) {
                    // As for the head's values: the client side writes trailers out, and a bare CR
                    // in one would be a line break to some clients (header injection).
                    if (t[i] == 0 || t[i] == '\r') {
                        throw new MalformedResponseException("forbidden character in a trailer value");
                    }
                }
                trailers.add(new AsciiString(t, pos, colon - pos, false), new AsciiString(t, vs, ve - vs, false));
            }
            pos = end + 1;
        }
        return trailers;
    }

    private static int hex(byte b) {
        if (b >= '0' && b <= '9') {
            return b - '0';
        }
        if (b >= 'a' && b <= 'f') {
            return b - 'a' + 10;
        }
        if (b >= 'A' && b <= 'F') {
            return b - 'A' + 10;
        }
        return -1;
    }
}
