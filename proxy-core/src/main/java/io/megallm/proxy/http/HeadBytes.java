package io.megallm.proxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;

import java.util.Iterator;
import java.util.Map;

/**
 * A relayed answer's HTTP/1.1 framing as bytes: the head, chunk lines, the last chunk with
 * trailers. Netty's response encoder did the same through a message-type check, a state machine
 * and a size guess per write, about 0.7 µs of a 13 µs request.
 */
final class HeadBytes {

    /** Room left behind the head for the first body bytes, so that a small answer is one write. */
    static final int BODY_ROOM = 2048;

    private static final byte[] HTTP_1_1 = {'H', 'T', 'T', 'P', '/', '1', '.', '1', ' '};
    private static final byte[] COLON_SPACE = {':', ' '};
    private static final byte[] LAST_CHUNK = {'0', '\r', '\n'};
    /** Lowercase hex digits, for chunk sizes here and generated request ids in {@link RequestReader}. */
    static final byte[] HEX = {'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'};
    private static final short CRLF = ('\r' << 8) | '\n';

    private HeadBytes() {
    }

    /** Status line and headers, with {@link #BODY_ROOM} bytes to spare. */
    static ByteBuf head(ByteBufAllocator alloc, HttpResponse head) {
        HttpHeaders headers = head.headers();
        ReceivedHeaders received = headers instanceof ReceivedHeaders r ? r : null;
        int fieldBytes = received != null ? received.encodedLength() : 48 * headers.size();
        ByteBuf buf = alloc.buffer(64 + fieldBytes + BODY_ROOM);
        HttpResponseStatus status = head.status();
        buf.writeBytes(HTTP_1_1);
        ByteBufUtil.copy(status.codeAsText(), buf);
        buf.writeByte(' ');
        ByteBufUtil.writeAscii(buf, status.reasonPhrase());
        buf.writeShort(CRLF);
        if (received != null) {
            received.writeTo(buf);
        } else {
            fields(buf, headers);
        }
        buf.writeShort(CRLF);
        return buf;
    }

    /** The line before a chunk of {@code size} (more than 0) bytes, in lowercase hex. */
    static ByteBuf chunkLine(ByteBufAllocator alloc, int size) {
        ByteBuf buf = alloc.buffer(10);
        for (int shift = (31 - Integer.numberOfLeadingZeros(size)) & ~3; shift >= 0; shift -= 4) {
            buf.writeByte(HEX[(size >>> shift) & 15]);
        }
        buf.writeShort(CRLF);
        return buf;
    }

    /** The line after a chunk's bytes. */
    static ByteBuf chunkEnd(ByteBufAllocator alloc) {
        return alloc.buffer(2).writeShort(CRLF);
    }

    /** The last chunk, the trailers if any, and the blank line that ends the answer. */
    static ByteBuf lastChunk(ByteBufAllocator alloc, HttpHeaders trailers) {
        ByteBuf buf = alloc.buffer(trailers.isEmpty() ? 5 : 5 + 48 * trailers.size());
        buf.writeBytes(LAST_CHUNK);
        fields(buf, trailers);
        buf.writeShort(CRLF);
        return buf;
    }

    private static void fields(ByteBuf buf, HttpHeaders headers) {
        for (Iterator<Map.Entry<CharSequence, CharSequence>> it = headers.iteratorCharSequence(); it.hasNext(); ) {
            Map.Entry<CharSequence, CharSequence> e = it.next();
            ByteBufUtil.writeAscii(buf, e.getKey());
            buf.writeBytes(COLON_SPACE);
            ByteBufUtil.writeAscii(buf, e.getValue());
            buf.writeShort(CRLF);
        }
    }
}
