package io.megallm.proxy.upstream;

import io.megallm.proxy.clock.EventClock;
import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.util.ReferenceCountUtil;

/**
 * The last handler of an upstream connection: reads the response off the socket's buffers
 * ({@link ResponseParser}) and passes it to whichever request holds the connection now. An idle
 * pooled connection has no listener, and anything it receives (the server closing it, or stray
 * bytes) ends it. It also watches the writes of the request: a connection whose request is still
 * going out (or failed to) when its response ends is not fit to be reused.
 */
final class UpstreamHandler extends ChannelDuplexHandler implements ResponseParser.Sink {

    private final ResponseParser parser = new ResponseParser(this);
    private final ChannelFutureListener writeDone = this::writeDone;
    private int writesPending;
    private boolean writeFailed;
    private UpstreamListener listener;
    private long idleSinceNanos;
    private boolean used;
    /** Bytes came after the end of a response: the connection is not fit to be reused. */
    private boolean spoiled;

    void attach(UpstreamListener listener, boolean headRequest) {
        this.listener = listener;
        this.used = true;
        parser.reset(headRequest);
    }

    void detach(long nowNanos) {
        this.listener = null;
        this.idleSinceNanos = nowNanos;
    }

    long idleSinceNanos() {
        return idleSinceNanos;
    }

    boolean used() {
        return used;
    }

    /** Every byte written so far reached the socket: the request is complete on the wire. */
    boolean requestWritten() {
        return writesPending == 0 && !writeFailed;
    }

    /** The request went out whole and nothing came after its response's end: fit for another. */
    boolean reusable() {
        return requestWritten() && !spoiled;
    }

    @Override
    public void onBytesAfterEnd() {
        spoiled = true;
    }

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
        writesPending++;
        // A void promise cannot be listened to; unvoid() keeps its report-failures-to-the-pipeline.
        ctx.write(msg, promise.unvoid().addListener(writeDone));
    }

    private void writeDone(ChannelFuture f) {
        writesPending--;
        if (!f.isSuccess()) {
            writeFailed = true;
        }
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (listener == null || !(msg instanceof ByteBuf bytes)) {
            ReferenceCountUtil.release(msg);
            ctx.close();
            return;
        }
        EventClock.enter();
        try {
            parser.feed(bytes, ctx.alloc());
        } catch (MalformedResponseException e) {
            detachAndClose(ctx, e);
        } finally {
            EventClock.exit();
        }
    }

    @Override
    public boolean onHead(HttpResponse head, boolean chunked) {
        UpstreamListener l = listener;
        return l != null && l.onResponseHead(head, chunked);
    }

    @Override
    public void onBody(ByteBuf bytes) {
        // The listener may have let go of the connection (pooled or closed it) on the way.
        UpstreamListener l = listener;
        if (l == null) {
            bytes.release();
            return;
        }
        l.onBody(bytes);
    }

    @Override
    public void onEnd(HttpHeaders trailers) {
        UpstreamListener l = listener;
        if (l != null) {
            l.onResponseEnd(trailers);
        }
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        UpstreamListener l = listener;
        if (l != null) {
            l.onReadComplete();
        }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        if (listener != null && parser.closed()) {
            // A body that runs until the close has just ended, cleanly.
            listener = null;
            return;
        }
        parser.releaseBuffers();
        UpstreamListener l = listener;
        listener = null;
        if (l != null) {
            l.onUpstreamClosed(null);
        }
    }

    @Override
    public void handlerRemoved(ChannelHandlerContext ctx) {
        parser.releaseBuffers();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        detachAndClose(ctx, cause);
    }

    private void detachAndClose(ChannelHandlerContext ctx, Throwable cause) {
        parser.releaseBuffers();
        UpstreamListener l = listener;
        listener = null;
        ctx.close();
        if (l != null) {
            l.onUpstreamClosed(cause);
        }
    }
}
