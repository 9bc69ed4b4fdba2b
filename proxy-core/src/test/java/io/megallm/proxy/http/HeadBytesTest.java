package io.megallm.proxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.DefaultHttpHeaders;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.util.AsciiString;
import io.netty.util.ReferenceCountUtil;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The bytes a relayed answer's framing is made of, read back by Netty's own client decoder. */
class HeadBytesTest {

    private static final ByteBufAllocator ALLOC = ByteBufAllocator.DEFAULT;

    private static String text(ByteBuf b) {
        try {
            return b.toString(StandardCharsets.ISO_8859_1);
        } finally {
            b.release();
        }
    }

    @Test
    void theHeadIsAStatusLineHeadersAndABlankLineWithRoomBehind() {
        HttpResponse r = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.TOO_MANY_REQUESTS);
        r.headers().add(new AsciiString("content-type"), new AsciiString("application/json"))
                .add("x-multi", "one").add("x-multi", "two")
                // A received byte above 0x7f, carried as one char: it goes out as that byte.
                .add("x-bytes", "caf\u00e9");
        ByteBuf head = HeadBytes.head(ALLOC, r);
        assertTrue(head.writableBytes() >= HeadBytes.BODY_ROOM, "room for the first body bytes");
        byte[] bytes = new byte[head.readableBytes()];
        head.getBytes(head.readerIndex(), bytes);
        assertEquals((byte) 0xe9, bytes[bytes.length - 5], "the é byte");
        assertEquals("HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nx-multi: one\r\n"
                + "x-multi: two\r\nx-bytes: caf\u00e9\r\n\r\n", text(head));
    }

    @Test
    void chunkLinesAreLowercaseHexWithoutLeadingZeros() {
        for (int n : new int[] {1, 9, 10, 15, 16, 255, 256, 4096, 65535, 1 << 20, Integer.MAX_VALUE}) {
            assertEquals(Integer.toHexString(n) + "\r\n", text(HeadBytes.chunkLine(ALLOC, n)), "size " + n);
        }
        assertEquals("\r\n", text(HeadBytes.chunkEnd(ALLOC)));
    }

    @Test
    void theLastChunkCarriesTheTrailers() {
        assertEquals("0\r\n\r\n", text(HeadBytes.lastChunk(ALLOC, new DefaultHttpHeaders())));
        HttpHeaders trailers = new DefaultHttpHeaders().add("x-checksum", "abc").add("x-done", "yes");
        assertEquals("0\r\nx-checksum: abc\r\nx-done: yes\r\n\r\n", text(HeadBytes.lastChunk(ALLOC, trailers)));
    }

    @Test
    void aChunkedAnswerMadeOfThesePiecesIsWhatAnHttpClientReads() {
        HttpResponse r = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
        r.headers().add("transfer-encoding", "chunked").add("content-type", "text/event-stream");
        EmbeddedChannel client = new EmbeddedChannel(new HttpClientCodec());
        try {
            client.writeOutbound(new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.GET, "/"));
            ReferenceCountUtil.release(client.readOutbound());
            ByteBuf data = ALLOC.buffer().writeBytes("data: hi\n\n".getBytes(StandardCharsets.US_ASCII));
            client.writeInbound(HeadBytes.head(ALLOC, r), HeadBytes.chunkLine(ALLOC, data.readableBytes()), data,
                    HeadBytes.chunkEnd(ALLOC),
                    HeadBytes.lastChunk(ALLOC, new DefaultHttpHeaders().add("x-trailer", "t")));
            HttpResponse head = client.readInbound();
            assertEquals(200, head.status().code());
            assertEquals(List.of("text/event-stream"), head.headers().getAll("content-type"));
            StringBuilder body = new StringBuilder();
            LastHttpContent last = null;
            Object m;
            while ((m = client.readInbound()) != null) {
                HttpContent c = (HttpContent) m;
                body.append(c.content().toString(StandardCharsets.US_ASCII));
                if (c instanceof LastHttpContent l) {
                    last = l;
                    assertEquals("t", l.trailingHeaders().get("x-trailer"));
                }
                c.release();
            }
            assertEquals("data: hi\n\n", body.toString());
            assertTrue(last != null, "the answer ended");
        } finally {
            client.finishAndReleaseAll();
        }
    }
}
