package io.megallm.proxy.relay;

import io.megallm.proxy.http.ErrorResponses;
import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.key.SecretScrubber;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;

/**
 * An upstream answer that made the request move on (401/402/403/429/5xx), or an error answer that
 * ends it (any other status of 400 and above). It is kept, body included, because when there is
 * nowhere left to move, the client gets it as it was with the keys masked (or, when the body was
 * too big to keep or compressed in a way the proxy cannot read, its status in the proxy's error
 * shape). A gzip or deflate body is passed on decompressed, masked like any other.
 */
final class BufferedAnswer {

    /** Error bodies are small JSON; one larger than this is not worth holding. */
    static final int MAX_BODY = 1024 * 1024;

    private final HttpResponse head;
    private final ByteBufAllocator alloc;
    /**
     * The body's bytes, copied out of each read into one buffer. Not a composite of the reads: an
     * upstream that sends its body a byte per segment would make that a buffer and a component
     * per byte, ~128 bytes of heap for each byte kept (the audit ran a 256 MB heap out of memory
     * with three such answers of 1 MB).
     */
    private ByteBuf body;
    /** The body grew past MAX_BODY and was let go: only the head is left to tell the client. */
    private boolean bodyDropped;

    BufferedAnswer(HttpResponse head, ByteBufAllocator alloc) {
        this.head = head;
        this.alloc = alloc;
    }

    int status() {
        return head.status().code();
    }

    /** Copies the readable bytes of {@code content} (the caller keeps its reference); false when the body grew past the cap. */
    boolean append(ByteBuf content) {
        int n = content.readableBytes();
        int have = body == null ? 0 : body.readableBytes();
        if (have + n > MAX_BODY) {
            return false;
        }
        if (n > 0) {
            if (body == null) {
                body = alloc.heapBuffer(Math.max(n, 512), MAX_BODY);
            }
            body.writeBytes(content, content.readerIndex(), n);
        }
        return true;
    }

    /**
     * The answer as one response, with the secrets of the keys this request used masked in its
     * body and its head (an upstream may echo the key it refused, in either); the buffer's
     * ownership moves into it.
     */
    FullHttpResponse toResponse(ApiKey[] usedKeys, int usedCount) {
        if (body != null) {
            ContentDecoding.Result decoded = ContentDecoding.decode(codings(), body, MAX_BODY, alloc);
            switch (decoded.outcome()) {
                case DECODED -> {
                    body.release();
                    body = decoded.body();
                    head.headers().remove(HttpHeaderNames.CONTENT_ENCODING);
                }
                case TOO_LARGE -> {
                    release();
                    return toErrorResponse("upstream_answer_too_large", "The upstream answered " + status()
                            + " with a body too large to pass on (over 1 MiB once decompressed).");
                }
                case UNREADABLE -> {
                    release();
                    return toErrorResponse("upstream_answer_unreadable", "The upstream answered " + status()
                            + " with a compressed body the proxy cannot read to mask keys in it.");
                }
                case PLAIN -> { }
            }
        }
        boolean bodyRead = body != null;
        ByteBuf content = SecretScrubber.scrub(bodyRead ? body : Unpooled.EMPTY_BUFFER, usedKeys, usedCount, alloc);
        body = null;
        HeaderRewriter.stripResponse(head.headers());
        SecretScrubber.scrub(head.headers(), usedKeys, usedCount);
        head.headers().remove(HttpHeaderNames.TRANSFER_ENCODING);
        if (bodyRead || !head.headers().contains(HttpHeaderNames.CONTENT_LENGTH)) {
            // No body read and a length given: the answer to a HEAD, whose length says what a GET's would be.
            head.headers().setInt(HttpHeaderNames.CONTENT_LENGTH, content.readableBytes());
        }
        return new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
                SecretScrubber.scrub(head.status(), usedKeys, usedCount), content, head.headers(),
                io.netty.handler.codec.http.EmptyHttpHeaders.INSTANCE);
    }

    /**
     * Every coding still on the body: the transfer codings but chunked (the parser took the chunks
     * off; the Transfer-Encoding is dropped below, so a gzip among them would reach the client as
     * gzip'd bytes, unmasked), then the content codings, of all their fields.
     */
    private String codings() {
        StringBuilder b = new StringBuilder();
        for (String te : head.headers().getAll(HttpHeaderNames.TRANSFER_ENCODING)) {
            for (String element : te.split(",")) {
                if (!element.strip().equalsIgnoreCase("chunked")) {
                    b.append(element).append(',');
                }
            }
        }
        for (String ce : head.headers().getAll(HttpHeaderNames.CONTENT_ENCODING)) {
            b.append(ce).append(',');
        }
        return b.toString();
    }

    /** Lets the body go (too big to keep); the status and Retry-After still make an answer. */
    void dropBody() {
        release();
        bodyDropped = true;
    }

    boolean bodyDropped() {
        return bodyDropped;
    }

    /**
     * For an answer whose body was dropped: its status, and its Retry-After when that is a
     * readable one (digits or a date cannot carry a key), in the proxy's error shape. A 502 of our
     * own would say the upstream could not be reached, and clients would retry instead of backing
     * off. The upstream's reason phrase and other headers are not kept: they were not checked.
     */
    FullHttpResponse toErrorResponse() {
        return toErrorResponse("upstream_answer_too_large", "The upstream answered " + status()
                + " with a body too large to pass on (over 1 MiB).");
    }

    private FullHttpResponse toErrorResponse(String errorCode, String message) {
        int code = status();
        String type = switch (code) {
            case 401, 402 -> ErrorResponses.AUTHENTICATION;
            case 403 -> ErrorResponses.PERMISSION;
            case 429 -> ErrorResponses.RATE_LIMIT;
            default -> ErrorResponses.SERVER;
        };
        FullHttpResponse response = ErrorResponses.error(alloc, HttpResponseStatus.valueOf(code), type,
                errorCode, message);
        String retryAfter = head.headers().get(HttpHeaderNames.RETRY_AFTER);
        if (RetryAfter.seconds(retryAfter, System.currentTimeMillis()) >= 0) {
            response.headers().set(HttpHeaderNames.RETRY_AFTER, retryAfter.trim());
        }
        return response;
    }

    void release() {
        if (body != null) {
            body.release();
            body = null;
        }
    }
}
