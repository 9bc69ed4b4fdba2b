package io.megallm.proxy.upstream;

import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelOutboundHandlerAdapter;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.ChannelPromise;
import io.netty.handler.proxy.HttpProxyHandler;
import io.netty.handler.proxy.ProxyHandler;
import io.netty.handler.proxy.Socks5ProxyHandler;
import io.netty.resolver.AddressResolverGroup;
import io.netty.util.NetUtil;
import io.netty.util.concurrent.Future;

import java.net.InetSocketAddress;
import java.net.SocketAddress;

/**
 * How upstream connections reach the upstream through an {@link EgressProxy}: a Netty proxy
 * handler per connection, and the proxy's host name looked up for each new connection, off the
 * event loop, as the upstream's own name is. (Looked up once at start, a proxy container that
 * Compose or Kubernetes recreated at another address stayed unreachable until a restart.) The
 * proxy handler holds the connection's writes until the tunnel stands, so the TLS handshake above
 * it goes to the upstream, not to the proxy; a proxy that fails fails the connect like a refused one.
 */
final class EgressRoute {

    private final EgressProxy proxy;
    private final InetSocketAddress address;
    private final AddressResolverGroup<InetSocketAddress> resolver;
    private final long timeoutMillis;

    EgressRoute(EgressProxy proxy, long timeoutMillis, AddressResolverGroup<InetSocketAddress> resolver) {
        this.proxy = proxy;
        String host = proxy.host();
        // An address literal needs no lookup; a name is looked up when a connection is made.
        this.address = NetUtil.isValidIpV4Address(host) || NetUtil.isValidIpV6Address(host)
                ? new InetSocketAddress(NetUtil.createInetAddressFromIpAddressString(host), proxy.port())
                : InetSocketAddress.createUnresolved(host, proxy.port());
        this.resolver = resolver;
        this.timeoutMillis = timeoutMillis;
    }

    EgressProxy proxy() {
        return proxy;
    }

    /** Adds the proxy's handlers to a new connection's pipeline, first, below any TLS. */
    void addTo(ChannelPipeline p) {
        if (address.isUnresolved()) {
            // Nearer the head than the proxy handler: its connect to the proxy passes here.
            p.addLast("egress-resolve", new ResolveOnConnect(resolver));
        }
        p.addLast("egress", newHandler());
    }

    private ProxyHandler newHandler() {
        ProxyHandler h = switch (proxy.kind()) {
            case HTTP -> proxy.user() == null ? new HttpProxyHandler(address)
                    : new HttpProxyHandler(address, proxy.user(), proxy.password());
            case SOCKS5, SOCKS5H -> proxy.user() == null ? new Socks5ProxyHandler(address)
                    : new Socks5ProxyHandler(address, proxy.user(), proxy.password());
        };
        h.setConnectTimeoutMillis(timeoutMillis);
        return h;
    }

    /** Looks up the proxy's name when the proxy handler connects to it, then connects to what it found. */
    private static final class ResolveOnConnect extends ChannelOutboundHandlerAdapter {

        private final AddressResolverGroup<InetSocketAddress> resolver;

        ResolveOnConnect(AddressResolverGroup<InetSocketAddress> resolver) {
            this.resolver = resolver;
        }

        @Override
        public void connect(ChannelHandlerContext ctx, SocketAddress remote, SocketAddress local, ChannelPromise promise) {
            if (!(remote instanceof InetSocketAddress unresolved) || !unresolved.isUnresolved()) {
                ctx.connect(remote, local, promise);
                return;
            }
            resolver.getResolver(ctx.executor()).resolve(unresolved).addListener((Future<InetSocketAddress> f) -> {
                if (!f.isSuccess()) {
                    promise.tryFailure(f.cause());
                } else if (!promise.isDone()) {
                    ctx.connect(f.getNow(), local, promise);
                }
            });
        }
    }
}
