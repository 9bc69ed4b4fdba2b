package io.megallm.proxy.http;

import io.megallm.proxy.clock.EventClock;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoop;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.util.AsciiString;
import io.netty.util.ReferenceCountUtil;

/**
 * One request and its answer on a client connection. It owns the request body until the
 * answer ends, then hands the connection back to the {@link RequestReader} (keep-alive) or
 * closes it. All methods run on the connection's event loop.
 */
public final class Exchange {

    public static final AsciiString X_REQUEST_ID = AsciiString.cached("x-request-id");

    private final RequestReader reader;
    private final ChannelHandlerContext ctx;
    // The encoder's context: a write from it goes out past the encoder, bytes as they are.
    private final ChannelHandlerContext encoder;
    private final InboundRequest request;
    private final boolean headRequest;
    private ClientListener listener;
    private boolean headSent;
    // A relayed answer (sendHead, sendBody, sendEnd) is written as bytes past the encoder.
    /** The client's body is chunked; bytes without framing of their own get chunk lines. */
    private boolean chunkedOut;
    /** HEAD, 204, 304: the head says what a body would be, and none follows. */
    private boolean noBody;
    /** The head, and the first body bytes if they fit, not written yet: one write at the flush. */
    private ByteBuf held;
    private boolean finished;
    private boolean closeAfter;
    /** The answer went out before the request's body was read: the close lingers (RequestReader). */
    private boolean bodyUnread;
    /** The answer's body is framed by the connection's close (an HTTP/1.0 client and no length). */
    private boolean bodyEndsWithClose;
    private boolean admittedOnHead;
    private int status;

    // What the access log and the metrics report once the exchange ends.
    private String route = "unmatched";
    private String model;
    private boolean stream;
    private String keyMasked;
    private int attempts;
    private long headNanos;
    private long bytesOut;
    private Ending ending = Ending.COMPLETE;
    /** Token counts the upstream reported for this answer; -1 while it reported none. */
    private long promptTokens = -1;
    private long completionTokens = -1;
    private long cachedTokens = -1;
    /** JSON documents (events) of a 2xx answer relayed without its usage; -1: none such. */
    private int documentsWithoutUsage = -1;
    /** JSON documents (events) of a 2xx answer read for its usage, with or without it; -1: none read. */
    private int documents = -1;
    /** What the program attaches to a request (its client), handed back when the exchange ends. */
    private Object attachment;

    /** How an exchange ended. */
    public enum Ending {
        /** The answer was sent whole. */
        COMPLETE,
        /** The client left before the answer ended. */
        CLIENT_GONE,
        /** The proxy cut the answer (the upstream failed after the head went out). */
        TRUNCATED,
        /** Still running at the end of SHUTDOWN_GRACE: the proxy closed it to exit. */
        SHUTDOWN
    }

    Exchange(RequestReader reader, ChannelHandlerContext ctx, ChannelHandlerContext encoder, InboundRequest request) {
        this.reader = reader;
        this.ctx = ctx;
        this.encoder = encoder;
        this.request = request;
        this.headRequest = request.method().equals(HttpMethod.HEAD);
    }

    public InboundRequest request() {
        return request;
    }

    public ByteBufAllocator alloc() {
        return ctx.alloc();
    }

    public EventLoop eventLoop() {
        return ctx.channel().eventLoop();
    }

    public void listen(ClientListener listener) {
        this.listener = listener;
    }

    public boolean isWritable() {
        return ctx.channel().isWritable();
    }

    public boolean headSent() {
        return headSent;
    }

    public boolean finished() {
        return finished;
    }

    /** The status sent to the client, 0 before the head went out. */
    public int status() {
        return status;
    }

    /** A label of bounded cardinality for metrics ("/v1/chat/completions", "/health", …). */
    public void route(String route) {
        this.route = route;
    }

    public String route() {
        return route;
    }

    /** What the request body said, for the access log. */
    public void describe(String model, boolean stream) {
        this.model = model;
        this.stream = stream;
    }

    public String model() {
        return model;
    }

    public boolean stream() {
        return stream;
    }

    /** Records an upstream attempt with the given (masked) key. */
    public void attempt(String maskedKey) {
        this.keyMasked = maskedKey;
        this.attempts++;
    }

    public String keyMasked() {
        return keyMasked;
    }

    public int attempts() {
        return attempts;
    }

    /** Nanoseconds from the first request byte to the response head going out, or -1. */
    public long timeToHeadNanos() {
        return headNanos == 0 ? -1 : headNanos - request.startNanos();
    }

    public long bytesOut() {
        return bytesOut;
    }

    /** The answer's token counts from the upstream's own {@code usage} (contract §13). */
    public void usage(long prompt, long completion, long cached) {
        this.promptTokens = prompt;
        this.completionTokens = completion;
        this.cachedTokens = cached;
    }

    /**
     * A 2xx answer's body was read for its usage and none came, after {@code documents} JSON
     * documents (a stream's events): the upstream did the work, but did not say (or not yet, when
     * the answer was cut) what it cost.
     */
    public void usageMissing(int documents) {
        this.documentsWithoutUsage = documents;
    }

    /** A 2xx answer's body was read for its usage: {@code documents} JSON documents (a stream's events) went by. */
    public void documents(int documents) {
        this.documents = documents;
    }

    /** The documents of a 2xx answer read for its usage ({@link #documents(int)}), or -1. */
    public int documents() {
        return documents;
    }

    /** The documents of a 2xx answer relayed without its usage ({@link #usageMissing}), or -1. */
    public int documentsWithoutUsage() {
        return documentsWithoutUsage;
    }

    /** False when the answer carried no usage (a stream without include_usage): unknown, not zero. */
    public boolean hasUsage() {
        return promptTokens >= 0;
    }

    public long promptTokens() {
        return Math.max(0, promptTokens);
    }

    public long completionTokens() {
        return Math.max(0, completionTokens);
    }

    public long cachedTokens() {
        return Math.max(0, cachedTokens);
    }

    public void attach(Object value) {
        this.attachment = value;
    }

    public Object attachment() {
        return attachment;
    }

    public Ending ending() {
        return ending;
    }

    public void respondError(HttpResponseStatus status, String type, String code, String message) {
        respond(ErrorResponses.error(alloc(), status, type, code, message));
    }

    /** A complete answer in one piece. */
    public void respond(FullHttpResponse response) {
        if (finished || headSent) {
            ReferenceCountUtil.release(response);
            return;
        }
        if (headRequest && response.content().isReadable()) {
            // The headers (Content-Length included) as for GET, never the body: a keep-alive
            // client would read it as the start of the next response.
            FullHttpResponse head = response.replace(Unpooled.EMPTY_BUFFER);
            response.release();
            response = head;
        }
        prepareHead(response);
        headSent = true;
        bytesOut += response.content().readableBytes();
        end(ctx, response);
    }

    /**
     * Starts a relayed answer; the head is flushed with the first body bytes or at the end.
     * Returns true when the client's body is chunked, so that an upstream's chunks may be passed
     * to it unchanged ({@link #sendBody(ByteBuf, boolean)} with {@code framed}).
     */
    public boolean sendHead(HttpResponse head) {
        prepareHead(head);
        headSent = true;
        int code = head.status().code();
        noBody = headRequest || code == 204 || code == 304;
        chunkedOut = !noBody && HttpUtil.isTransferEncodingChunked(head);
        held = HeadBytes.head(ctx.alloc(), head);
        request.dropBody();
        return chunkedOut;
    }

    /**
     * Body bytes; ownership passes to the connection. {@code framed}: the bytes carry their own
     * chunk framing and go out as they are. A failed write closes the connection.
     */
    public void sendBody(ByteBuf bytes, boolean framed) {
        int n = bytes.readableBytes();
        bytesOut += n;
        if (noBody || n == 0) {
            bytes.release();
            return;
        }
        if (chunkedOut && !framed) {
            write(HeadBytes.chunkLine(ctx.alloc(), n));
            write(bytes);
            write(HeadBytes.chunkEnd(ctx.alloc()));
        } else {
            write(bytes);
        }
    }

    /** Behind the held head while it has room (one buffer, one write), else after it. */
    private void write(ByteBuf bytes) {
        if (held != null) {
            if (held.writableBytes() >= bytes.readableBytes()) {
                held.writeBytes(bytes);
                bytes.release();
                return;
            }
            writeHeld();
        }
        encoder.write(bytes, ctx.voidPromise());
    }

    private void writeHeld() {
        ByteBuf h = held;
        held = null;
        encoder.write(h, ctx.voidPromise());
    }

    public void flush() {
        if (held != null) {
            writeHeld();
        }
        ctx.flush();
    }

    /** The end of a relayed answer, with the upstream's trailers if it sent any. */
    public void sendEnd(HttpHeaders trailers) {
        if (chunkedOut) {
            write(HeadBytes.lastChunk(ctx.alloc(), trailers));
        }
        ByteBuf last = held != null ? held : Unpooled.EMPTY_BUFFER;
        held = null;
        end(encoder, last);
    }

    /**
     * Ends the answer without a clean end of the response: the client sees a broken
     * transfer, never a silently truncated success.
     */
    public void abort() {
        if (finished) {
            return;
        }
        closeAfter = true;
        ending = Ending.TRUNCATED;
        if (headSent && bodyEndsWithClose) {
            // The client (HTTP/1.0) reads the body up to the close, so a FIN would tell it the
            // answer was whole (contract §8: an error, never a silently truncated success). A
            // reset says it was not. HTTP/1.1 clients see the missing last chunk or short length.
            try {
                ctx.channel().config().setOption(ChannelOption.SO_LINGER, 0);
            } catch (RuntimeException e) {
                // Not a TCP socket (an embedded channel in tests): the plain close below.
            }
        }
        ctx.close();
        finish();
    }

    /** The last write of an answer, from {@code from}: the connection ({@code ctx}) or past the encoder. */
    private void end(ChannelHandlerContext from, Object last) {
        if (closeAfter && bodyUnread) {
            // The client may still be sending the body we did not read: a close now would make
            // its kernel answer those bytes with a reset, which can throw our answer away before
            // the client reads it (an SDK uploading 10 MiB saw "connection reset" for a 413).
            from.writeAndFlush(last).addListener(reader.lingerAfter());
        } else if (closeAfter) {
            from.writeAndFlush(last).addListener(ChannelFutureListener.CLOSE);
        } else {
            // No promise to allocate when nobody waits for the write.
            from.writeAndFlush(last, ctx.voidPromise());
        }
        finish();
    }

    private void finish() {
        if (finished) {
            return;
        }
        finished = true;
        if (held != null) {
            held.release();
            held = null;
        }
        listener = null;
        ((ResponseEncoder) encoder.handler()).headRequest(false);
        request.dropBody();
        reader.exchangeDone(this, closeAfter);
    }

    private void prepareHead(HttpResponse head) {
        ((ResponseEncoder) encoder.handler()).headRequest(headRequest);
        status = head.status().code();
        headNanos = EventClock.nanoTime();
        head.setProtocolVersion(HttpVersion.HTTP_1_1);
        head.headers().set(X_REQUEST_ID, request.requestId());
        boolean http10 = request.protocolVersion().equals(HttpVersion.HTTP_1_0);
        closeAfter = closeAfter || !request.keepAlive() || reader.draining();
        if (http10 && HttpUtil.isTransferEncodingChunked(head)) {
            // HTTP/1.0 has no chunked framing: the end of the body is the end of the connection.
            head.headers().remove(HttpHeaderNames.TRANSFER_ENCODING);
            closeAfter = true;
        }
        bodyEndsWithClose = http10 && !head.headers().contains(HttpHeaderNames.CONTENT_LENGTH);
        if (closeAfter) {
            head.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
        } else if (http10) {
            head.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.KEEP_ALIVE);
        }
    }

    /** True when a {@link HeadCheck} (not {@link HeadCheck#NONE}) let this request in on its head. */
    public boolean admittedOnHead() {
        return admittedOnHead;
    }

    void admittedOnHead(boolean admitted) {
        admittedOnHead = admitted;
    }

    /**
     * Marks a request the reader refused with its own answer (written by the reader, not through
     * this exchange), so that the access log and the metrics see it like any other: route
     * {@code refused}, the status and body bytes of that answer.
     */
    void refused(int status, long bytes) {
        this.status = status;
        this.route = "refused";
        headNanos = EventClock.nanoTime();
        bytesOut = bytes;
        headSent = true;
        finished = true;
        closeAfter = true;
        request.dropBody();
    }

    /**
     * Whether the connection closes after this answer, whatever the request asked for: true when
     * the answer comes before the body was read (so the connection closes lingering).
     */
    void closeAfterAnswer(boolean close) {
        closeAfter = close;
        bodyUnread = close;
    }

    void clientWritable() {
        if (listener != null) {
            listener.onClientWritable();
        }
    }

    void clientGone() {
        clientGone(false);
    }

    /** The connection closed; {@code cut}: by the proxy at the end of the shutdown grace, not by the client. */
    void clientGone(boolean cut) {
        ClientListener l = listener;
        if (l != null) {
            l.onClientGone();
        }
        // Whoever listened has cleaned up; make sure the body is released even if nobody did.
        if (!finished) {
            ending = cut ? Ending.SHUTDOWN : Ending.CLIENT_GONE;
            closeAfter = true;
            finish();
        }
    }
}
