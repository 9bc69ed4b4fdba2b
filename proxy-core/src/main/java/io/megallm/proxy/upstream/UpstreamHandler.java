package io.megallm.proxy.upstream;

import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.util.ReferenceCountUtil;

/**
 * The last handler of an upstream connection: passes the decoded response to whichever
 * request holds the connection now. An idle pooled connection has no listener, and anything
 * it receives (the server closing it, or stray bytes) ends it.
 */
final class UpstreamHandler extends ChannelInboundHandlerAdapter {

    private UpstreamListener listener;
    private long idleSinceNanos;
    private boolean used;

    void attach(UpstreamListener listener) {
        this.listener = listener;
        this.used = true;
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

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        UpstreamListener l = listener;
        if (l == null) {
            ReferenceCountUtil.release(msg);
            ctx.close();
            return;
        }
        if (msg instanceof HttpResponse head) {
            if (head.decoderResult().isFailure()) {
                ReferenceCountUtil.release(msg);
                detachAndClose(ctx, head.decoderResult().cause());
                return;
            }
            l.onResponseHead(head);
        }
        if (msg instanceof HttpContent content) {
            if (content.decoderResult().isFailure()) {
                content.release();
                detachAndClose(ctx, content.decoderResult().cause());
                return;
            }
            // The listener may have detached (and pooled or closed us) while handling the head.
            UpstreamListener now = listener;
            if (now == null) {
                content.release();
                return;
            }
            now.onContent(content);
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
        UpstreamListener l = listener;
        listener = null;
        if (l != null) {
            l.onUpstreamClosed(null);
        }
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        detachAndClose(ctx, cause);
    }

    private void detachAndClose(ChannelHandlerContext ctx, Throwable cause) {
        UpstreamListener l = listener;
        listener = null;
        ctx.close();
        if (l != null) {
            l.onUpstreamClosed(cause);
        }
    }
}
