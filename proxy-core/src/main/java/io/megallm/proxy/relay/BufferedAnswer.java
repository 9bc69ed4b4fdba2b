package io.megallm.proxy.relay;

import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.key.SecretScrubber;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.ByteBuf;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpVersion;

/**
 * An upstream answer that made the request move on (401/402/403/429/5xx). It is kept, body
 * included, because when there is nowhere left to move, the client gets it as it was.
 */
final class BufferedAnswer {

    /** Error bodies are small JSON; one larger than this is not worth holding. */
    static final int MAX_BODY = 1024 * 1024;

    private final HttpResponse head;
    private final CompositeByteBuf body;
    private final ByteBufAllocator alloc;

    BufferedAnswer(HttpResponse head, ByteBufAllocator alloc) {
        this.head = head;
        this.alloc = alloc;
        this.body = alloc.compositeBuffer(Integer.MAX_VALUE);
    }

    int status() {
        return head.status().code();
    }

    /** Takes a retained reference to {@code content}; false when the body grew past the cap. */
    boolean append(ByteBuf content) {
        if (body.readableBytes() + content.readableBytes() > MAX_BODY) {
            return false;
        }
        if (content.isReadable()) {
            body.addComponent(true, content.retain());
        }
        return true;
    }

    /**
     * The answer as one response, with the secrets of the keys this request used masked in its
     * body and its head (an upstream may echo the key it refused, in either); the buffer's
     * ownership moves into it.
     */
    FullHttpResponse toResponse(ApiKey[] usedKeys, int usedCount) {
        ByteBuf content = SecretScrubber.scrub(body, usedKeys, usedCount, alloc);
        HeaderRewriter.stripResponse(head.headers());
        SecretScrubber.scrub(head.headers(), usedKeys, usedCount);
        head.headers().remove(HttpHeaderNames.TRANSFER_ENCODING);
        head.headers().setInt(HttpHeaderNames.CONTENT_LENGTH, content.readableBytes());
        return new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, head.status(), content, head.headers(),
                io.netty.handler.codec.http.EmptyHttpHeaders.INSTANCE);
    }

    void release() {
        body.release();
    }
}
