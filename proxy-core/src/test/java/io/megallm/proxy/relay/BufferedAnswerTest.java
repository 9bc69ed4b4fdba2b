package io.megallm.proxy.relay;

import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.key.KeyPool;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BufferedAnswerTest {

    private final ByteBufAllocator alloc = PooledByteBufAllocator.DEFAULT;

    /**
     * An upstream that sends its rejection a byte per segment must not cost a buffer per byte: the
     * answer keeps no reference to any read, only the bytes.
     */
    @Test
    void anAnswerReadAByteAtATimeHoldsNoneOfItsReads() {
        BufferedAnswer answer = new BufferedAnswer(
                new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.TOO_MANY_REQUESTS), alloc);
        String text = "{\"error\":{\"message\":\"slow down\"}}".repeat(300);
        List<ByteBuf> reads = new ArrayList<>();
        for (byte b : text.getBytes(StandardCharsets.UTF_8)) {
            ByteBuf read = alloc.directBuffer(1).writeByte(b);
            reads.add(read);
            assertTrue(answer.append(read));
            read.release(); // as the relay does once append returns
        }
        for (ByteBuf read : reads) {
            assertEquals(0, read.refCnt(), "the answer kept a read");
        }
        FullHttpResponse response = answer.toResponse(new ApiKey[0], 0);
        try {
            assertEquals(text, response.content().toString(StandardCharsets.UTF_8));
            assertEquals(Integer.toString(text.length()), response.headers().get("content-length"));
        } finally {
            response.release();
        }
    }

    @Test
    void aBodyPastTheCapIsRefusedAndWhatWasKeptIsReleased() {
        BufferedAnswer answer = new BufferedAnswer(
                new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.SERVICE_UNAVAILABLE), alloc);
        ByteBuf half = alloc.heapBuffer().writeZero(BufferedAnswer.MAX_BODY / 2 + 1);
        try {
            assertTrue(answer.append(half));
            assertFalse(answer.append(half), "past MAX_BODY");
        } finally {
            half.release();
        }
        answer.release();
        answer.release(); // a second release (the relay's clean-up after a drop) is harmless
    }

    @Test
    void aKeyInTheReasonPhraseIsMasked() {
        KeyPool pool = new KeyPool(System::nanoTime);
        String secret = "sk-mega-reason-0123456789abcdef";
        pool.reload(List.of(secret));
        ApiKey key = pool.keys().get(0);
        BufferedAnswer answer = new BufferedAnswer(new DefaultHttpResponse(HttpVersion.HTTP_1_1,
                new HttpResponseStatus(401, "Invalid key " + secret)), alloc);
        FullHttpResponse response = answer.toResponse(new ApiKey[] {key}, 1);
        try {
            assertEquals(401, response.status().code());
            assertEquals("Invalid key " + key.masked().replace("\u2026", "..."), response.status().reasonPhrase());
        } finally {
            response.release();
        }
    }

    /** The answer to a HEAD has no body but says how long a GET's would be: that length stays. */
    @Test
    void aKeptAnswerWithoutABodyKeepsItsContentLength() {
        DefaultHttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.SERVICE_UNAVAILABLE);
        head.headers().set("content-length", "57");
        FullHttpResponse response = new BufferedAnswer(head, alloc).toResponse(new ApiKey[0], 0);
        try {
            assertEquals("57", response.headers().get("content-length"));
        } finally {
            response.release();
        }
    }
}
