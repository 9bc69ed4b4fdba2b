package io.megallm.proxy.upstream;

import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelOutboundHandlerAdapter;
import io.netty.channel.ChannelPromise;
import io.netty.util.AttributeKey;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;

/**
 * Notes the address a new upstream connection dials, as it reaches the socket: after the name
 * was looked up, and after an outbound proxy's handler put the proxy's address in. A failed
 * connect does not say where it went, and {@link AddressHealth} needs to know. Nearest the
 * pipeline's head; it leaves the pipeline at the connect, so writes never pass it.
 */
@ChannelHandler.Sharable
final class DialedAddress extends ChannelOutboundHandlerAdapter {

    static final DialedAddress RECORDER = new DialedAddress();

    private static final AttributeKey<InetSocketAddress> DIALED = AttributeKey.valueOf("megallm.dialed");

    private DialedAddress() {
    }

    @Override
    public void connect(ChannelHandlerContext ctx, SocketAddress remote, SocketAddress local, ChannelPromise promise) {
        if (remote instanceof InetSocketAddress a) {
            ctx.channel().attr(DIALED).set(a);
        }
        ctx.pipeline().remove(this);
        ctx.connect(remote, local, promise);
    }

    /** The address {@code ch} dialled, or null (not dialled yet, or not an IP address). */
    static InetAddress of(Channel ch) {
        InetSocketAddress a = ch.hasAttr(DIALED) ? ch.attr(DIALED).get() : null;
        return a == null ? null : a.getAddress();
    }
}
