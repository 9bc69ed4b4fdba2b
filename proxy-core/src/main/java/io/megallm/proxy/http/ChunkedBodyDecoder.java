package io.megallm.proxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.handler.codec.http.HttpResponseStatus;

/**
 * Takes a chunked request body apart (RFC 9112 §7.1): the sink takes chunk data straight from the
 * received buffer (and decides whether to keep a slice or copy); chunk extensions and trailer
 * fields are read and dropped, since the body goes upstream whole with a Content-Length. One per
 * connection, reset by each body's end.
 */
final class ChunkedBodyDecoder {

    /**
     * Receives each piece of chunk data: it must read exactly {@code length} bytes from {@code in}
     * (a retained slice or a copy, its choice), or throw. No buffer is made per piece here, so a
     * body of tiny chunks costs no object per chunk.
     */
    interface Sink {
        void accept(ByteBuf in, int length) throws BadRequest;
    }

    private static final int MAX_SIZE_LINE = 4096;
    private static final int SIZE = 0;
    private static final int DATA = 1;
    private static final int DATA_END = 2;
    private static final int TRAILER = 3;

    private final int maxTrailer;
    private int state = SIZE;
    private long remaining;
    private int trailerBytes;

    ChunkedBodyDecoder(int maxTrailer) {
        this.maxTrailer = maxTrailer;
    }

    /** Reads what it can of {@code in}; true once the last chunk and the trailer section are read. */
    boolean decode(ByteBuf in, Sink sink) throws BadRequest {
        while (in.isReadable()) {
            switch (state) {
                case SIZE -> {
                    int lf = in.indexOf(in.readerIndex(), in.writerIndex(), (byte) '\n');
                    if (lf < 0) {
                        if (in.readableBytes() > MAX_SIZE_LINE) {
                            throw tooLong();
                        }
                        return false;
                    }
                    if (lf - in.readerIndex() > MAX_SIZE_LINE) {
                        throw tooLong();
                    }
                    remaining = size(in, in.readerIndex(), lf);
                    in.readerIndex(lf + 1);
                    state = remaining == 0 ? TRAILER : DATA;
                }
                case DATA -> {
                    int n = (int) Math.min(remaining, in.readableBytes());
                    sink.accept(in, n);
                    remaining -= n;
                    if (remaining == 0) {
                        state = DATA_END;
                    }
                }
                case DATA_END -> {
                    byte b = in.getByte(in.readerIndex());
                    if (b == '\n') {
                        in.skipBytes(1);
                    } else if (b == '\r') {
                        if (in.readableBytes() < 2) {
                            return false;
                        }
                        if (in.getByte(in.readerIndex() + 1) != '\n') {
                            throw BadRequest.malformed();
                        }
                        in.skipBytes(2);
                    } else {
                        throw BadRequest.malformed();
                    }
                    state = SIZE;
                }
                default -> {
                    int lf = in.indexOf(in.readerIndex(), in.writerIndex(), (byte) '\n');
                    if (lf < 0) {
                        // + 2: the CR LF of the blank line that ends the section is not a trailer byte.
                        if (trailerBytes + in.readableBytes() > maxTrailer + 2) {
                            throw trailerTooLarge();
                        }
                        return false;
                    }
                    int length = lf - in.readerIndex();
                    boolean empty = length == 0 || (length == 1 && in.getByte(in.readerIndex()) == '\r');
                    in.readerIndex(lf + 1);
                    if (empty) {
                        state = SIZE;
                        trailerBytes = 0;
                        return true;
                    }
                    trailerBytes += length + 1;
                    if (trailerBytes > maxTrailer) {
                        throw trailerTooLarge();
                    }
                }
            }
        }
        return false;
    }

    /** Drops the state of an unfinished body (the request was refused or the client left). */
    void reset() {
        state = SIZE;
        remaining = 0;
        trailerBytes = 0;
    }

    /** The hex size at the start of the line; what follows it may only be extensions or blanks. */
    private static long size(ByteBuf in, int p, int lf) throws BadRequest {
        long size = 0;
        int digits = 0;
        for (; p < lf; p++, digits++) {
            int d = Character.digit(in.getByte(p), 16);
            if (d < 0) {
                break;
            }
            if (size >= 1L << 56) {
                // Past 2^56 bytes: no body this proxy accepts is that large.
                throw new BadRequest(HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE, "request_too_large",
                        "A chunk of the request body is larger than this proxy accepts.");
            }
            size = size << 4 | d;
        }
        if (digits == 0) {
            throw BadRequest.malformed();
        }
        for (; p < lf; p++) {
            byte c = in.getByte(p);
            if (c == ';' || c == ' ' || c == '\t') {
                // Extensions and blanks run to the end of the line; refuse only control bytes in them.
                for (; p < lf; p++) {
                    int x = in.getByte(p) & 0xff;
                    if ((x < 0x20 && x != '\t' && !(x == '\r' && p == lf - 1)) || x == 0x7f) {
                        throw BadRequest.malformed();
                    }
                }
                break;
            }
            if (c != '\r' || p != lf - 1) {
                throw BadRequest.malformed();
            }
        }
        return size;
    }

    private static BadRequest tooLong() {
        return new BadRequest(HttpResponseStatus.BAD_REQUEST, "bad_request", "A part of the request is too long.");
    }

    private static BadRequest trailerTooLarge() {
        return new BadRequest(HttpResponseStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large",
                "The request headers are too large.");
    }
}
