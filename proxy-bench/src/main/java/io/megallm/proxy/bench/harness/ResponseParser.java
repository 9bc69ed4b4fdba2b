package io.megallm.proxy.bench.harness;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

/**
 * A small incremental HTTP/1.1 response parser for the load client: status, Content-Length or
 * chunked framing, body bytes handed to the listener as they arrive. It allocates nothing per
 * response (one cumulation buffer per connection), so that the client spends its core on
 * sending and timing, not on decoding.
 */
public final class ResponseParser {

    /** What the parser reports; all calls happen inside {@link #feed}. */
    public interface Listener {
        void onHead(int status);

        /** {@code length} body bytes at {@code index} of {@code buf} (not to be retained). */
        void onBody(ByteBuf buf, int index, int length);

        void onComplete();
    }

    /** The bytes are not HTTP/1.1 as this parser knows it. */
    public static final class ParseException extends RuntimeException {
        public ParseException(String message) {
            super(message, null, false, false);
        }
    }

    private enum State { HEAD, BODY_FIXED, CHUNK_SIZE, CHUNK_DATA, CHUNK_CRLF, TRAILER }

    private static final int MAX_HEAD = 64 * 1024;

    private final Listener listener;
    private final ByteBuf cumulation;
    private State state = State.HEAD;
    private long remaining;
    private int scanFrom;

    public ResponseParser(ByteBufAllocator alloc, Listener listener) {
        this.listener = listener;
        this.cumulation = alloc.heapBuffer(4096);
    }

    public void release() {
        cumulation.release();
    }

    /** True between a response head and the end of its body. */
    public boolean inResponse() {
        return state != State.HEAD || cumulation.isReadable();
    }

    /** Consumes {@code in} (the caller keeps ownership and releases it). */
    public void feed(ByteBuf in) {
        cumulation.writeBytes(in);
        parse();
        if (!cumulation.isReadable()) {
            cumulation.clear();
            scanFrom = 0;
        } else if (cumulation.readerIndex() > 16 * 1024) {
            int shift = cumulation.readerIndex();
            cumulation.discardReadBytes();
            scanFrom = Math.max(0, scanFrom - shift);
        }
    }

    private void parse() {
        ByteBuf b = cumulation;
        for (;;) {
            switch (state) {
                case HEAD -> {
                    int end = findHeadEnd(b);
                    if (end < 0) {
                        if (b.readableBytes() > MAX_HEAD) {
                            throw new ParseException("response head larger than " + MAX_HEAD + " bytes");
                        }
                        return;
                    }
                    parseHead(b, b.readerIndex(), end);
                    b.readerIndex(end + 4);
                    scanFrom = b.readerIndex();
                }
                case BODY_FIXED -> {
                    if (remaining == 0) {
                        state = State.HEAD;
                        listener.onComplete();
                        continue;
                    }
                    int n = (int) Math.min(remaining, b.readableBytes());
                    if (n == 0) {
                        return;
                    }
                    listener.onBody(b, b.readerIndex(), n);
                    b.skipBytes(n);
                    remaining -= n;
                }
                case CHUNK_SIZE -> {
                    int eol = findCrlf(b, b.readerIndex());
                    if (eol < 0) {
                        if (b.readableBytes() > 1024) {
                            throw new ParseException("chunk size line too long");
                        }
                        return;
                    }
                    long size = parseHex(b, b.readerIndex(), eol);
                    b.readerIndex(eol + 2);
                    if (size == 0) {
                        state = State.TRAILER;
                    } else {
                        remaining = size;
                        state = State.CHUNK_DATA;
                    }
                }
                case CHUNK_DATA -> {
                    int n = (int) Math.min(remaining, b.readableBytes());
                    if (n == 0) {
                        return;
                    }
                    listener.onBody(b, b.readerIndex(), n);
                    b.skipBytes(n);
                    remaining -= n;
                    if (remaining == 0) {
                        state = State.CHUNK_CRLF;
                    }
                }
                case CHUNK_CRLF -> {
                    if (b.readableBytes() < 2) {
                        return;
                    }
                    if (b.getByte(b.readerIndex()) != '\r' || b.getByte(b.readerIndex() + 1) != '\n') {
                        throw new ParseException("chunk not followed by CRLF");
                    }
                    b.skipBytes(2);
                    state = State.CHUNK_SIZE;
                }
                case TRAILER -> {
                    int eol = findCrlf(b, b.readerIndex());
                    if (eol < 0) {
                        return;
                    }
                    boolean empty = eol == b.readerIndex();
                    b.readerIndex(eol + 2);
                    if (empty) {
                        state = State.HEAD;
                        scanFrom = b.readerIndex();
                        listener.onComplete();
                    }
                }
                default -> throw new IllegalStateException();
            }
        }
    }

    private int findHeadEnd(ByteBuf b) {
        int from = Math.max(scanFrom, b.readerIndex());
        int to = b.writerIndex() - 3;
        for (int i = from; i < to; i++) {
            if (b.getByte(i) == '\r' && b.getByte(i + 1) == '\n' && b.getByte(i + 2) == '\r' && b.getByte(i + 3) == '\n') {
                return i;
            }
        }
        scanFrom = Math.max(b.readerIndex(), to);
        return -1;
    }

    private static int findCrlf(ByteBuf b, int from) {
        int to = b.writerIndex() - 1;
        for (int i = from; i < to; i++) {
            if (b.getByte(i) == '\r' && b.getByte(i + 1) == '\n') {
                return i;
            }
        }
        return -1;
    }

    private void parseHead(ByteBuf b, int start, int end) {
        // "HTTP/1.1 200 OK"
        if (end - start < 12 || b.getByte(start) != 'H' || b.getByte(start + 4) != '/') {
            throw new ParseException("not an HTTP response");
        }
        int status = (b.getByte(start + 9) - '0') * 100 + (b.getByte(start + 10) - '0') * 10 + (b.getByte(start + 11) - '0');
        long contentLength = -1;
        boolean chunked = false;
        int line = findCrlf(b, start);
        while (line >= 0 && line < end) {
            int ls = line + 2;
            int le = findCrlf(b, ls);
            if (le < 0 || le > end) {
                le = end;
            }
            int colon = -1;
            for (int i = ls; i < le; i++) {
                if (b.getByte(i) == ':') {
                    colon = i;
                    break;
                }
            }
            if (colon > 0) {
                if (nameIs(b, ls, colon, "content-length")) {
                    contentLength = parseDecimal(b, colon + 1, le);
                } else if (nameIs(b, ls, colon, "transfer-encoding")) {
                    chunked = containsChunked(b, colon + 1, le);
                }
            }
            if (le == end) {
                break;
            }
            line = le;
        }
        if (status >= 100 && status < 200) {
            return; // interim answer; the real head follows
        }
        listener.onHead(status);
        if (chunked) {
            state = State.CHUNK_SIZE;
        } else if (contentLength >= 0) {
            remaining = contentLength;
            state = State.BODY_FIXED;
        } else if (status == 204 || status == 304) {
            remaining = 0;
            state = State.BODY_FIXED;
        } else {
            throw new ParseException("response without Content-Length or chunked framing");
        }
    }

    private static boolean nameIs(ByteBuf b, int from, int to, String name) {
        return to - from == name.length() && lowerMatches(b, from, name);
    }

    private static boolean containsChunked(ByteBuf b, int from, int to) {
        String word = "chunked";
        for (int i = from; i <= to - word.length(); i++) {
            if (lowerMatches(b, i, word)) {
                return true;
            }
        }
        return false;
    }

    /** Whether the bytes at {@code at}, ASCII letters lowered, are {@code word} (lower case). */
    private static boolean lowerMatches(ByteBuf b, int at, String word) {
        for (int i = 0; i < word.length(); i++) {
            int c = b.getByte(at + i);
            if (c >= 'A' && c <= 'Z') {
                c += 32;
            }
            if (c != word.charAt(i)) {
                return false;
            }
        }
        return true;
    }

    private static long parseDecimal(ByteBuf b, int from, int to) {
        long v = 0;
        boolean any = false;
        for (int i = from; i < to; i++) {
            int c = b.getByte(i);
            if (c >= '0' && c <= '9') {
                v = v * 10 + (c - '0');
                any = true;
            } else if (c != ' ' && c != '\t') {
                throw new ParseException("bad Content-Length");
            }
        }
        if (!any) {
            throw new ParseException("empty Content-Length");
        }
        return v;
    }

    private static long parseHex(ByteBuf b, int from, int to) {
        long v = 0;
        boolean any = false;
        for (int i = from; i < to; i++) {
            int c = b.getByte(i);
            int d;
            if (c >= '0' && c <= '9') {
                d = c - '0';
            } else if (c >= 'a' && c <= 'f') {
                d = c - 'a' + 10;
            } else if (c >= 'A' && c <= 'F') {
                d = c - 'A' + 10;
            } else if (c == ';' || c == ' ') {
                break;
            } else {
                throw new ParseException("bad chunk size");
            }
            v = v * 16 + d;
            any = true;
            if (v > Integer.MAX_VALUE) {
                throw new ParseException("chunk too large");
            }
        }
        if (!any) {
            throw new ParseException("empty chunk size");
        }
        return v;
    }
}
