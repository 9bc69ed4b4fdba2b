package io.megallm.proxy.upstream;

import io.netty.handler.proxy.HttpProxyHandler;
import io.netty.handler.proxy.ProxyHandler;
import io.netty.handler.proxy.Socks5ProxyHandler;

import java.net.InetSocketAddress;

/**
 * How upstream connections reach the upstream through an {@link EgressProxy}: the proxy's address,
 * looked up once (at start, never on an event loop), and a Netty proxy handler per connection.
 * The handler holds the connection's writes until the tunnel stands, so the TLS handshake above it
 * goes to the upstream, not to the proxy; a proxy that fails fails the connect like a refused one.
 */
final class EgressRoute {

    private final EgressProxy proxy;
    private final InetSocketAddress address;
    private final long timeoutMillis;

    EgressRoute(EgressProxy proxy, long timeoutMillis) {
        this.proxy = proxy;
        this.address = new InetSocketAddress(proxy.host(), proxy.port());
        this.timeoutMillis = timeoutMillis;
    }

    EgressProxy proxy() {
        return proxy;
    }

    ProxyHandler newHandler() {
        ProxyHandler h = switch (proxy.kind()) {
            case HTTP -> proxy.user() == null ? new HttpProxyHandler(address)
                    : new HttpProxyHandler(address, proxy.user(), proxy.password());
            case SOCKS5, SOCKS5H -> proxy.user() == null ? new Socks5ProxyHandler(address)
                    : new Socks5ProxyHandler(address, proxy.user(), proxy.password());
        };
        h.setConnectTimeoutMillis(timeoutMillis);
        return h;
    }
}
