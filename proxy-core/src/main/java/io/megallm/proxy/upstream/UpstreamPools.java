package io.megallm.proxy.upstream;

import io.netty.channel.Channel;
import io.netty.channel.ChannelFactory;
import io.netty.channel.EventLoop;
import io.netty.channel.ReflectiveChannelFactory;
import io.netty.channel.socket.SocketChannel;
import io.netty.handler.ssl.SslContext;
import io.netty.resolver.NoopAddressResolverGroup;
import io.netty.util.NetUtil;
import io.netty.handler.ssl.SslContextBuilder;

import javax.net.ssl.SSLException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import java.util.concurrent.atomic.AtomicInteger;

/** One {@link UpstreamPool} per event loop, created on first use by that loop. */
public final class UpstreamPools {

    private final UpstreamTarget target;
    private final ChannelFactory<? extends SocketChannel> channels;
    private final UpstreamSettings settings;
    private final ConnectionLimiter limiter;
    private final SslContext ssl;
    private final ConcurrentMap<EventLoop, UpstreamPool> pools = new ConcurrentHashMap<>();
    /** Pools made so far: the next one's share of the idle budget ({@link UpstreamSettings#maxIdleOfPool}). */
    private final AtomicInteger made = new AtomicInteger();
    private final OffloadedResolverGroup resolver = new OffloadedResolverGroup();
    /** The outbound proxy as a tunnel (CONNECT for https, SOCKS5), or null. */
    private final EgressRoute egress;
    /**
     * An HTTP proxy for an http base URL, or null: the connections go to it and each request names
     * its target in absolute form, as httpx and curl send them (RFC 9112 §3.2.2). Squid's and
     * tinyproxy's stock rules refuse CONNECT to any port but 443, so a tunnel to an http upstream
     * on 8080 failed where the seed's httpx went through.
     */
    private final EgressProxy forwarding;
    private final String requestPrefix;
    private final String proxyAuthorization;
    private final SslContext tlsOverride;

    public UpstreamPools(UpstreamTarget target, Class<? extends SocketChannel> channelType, UpstreamSettings settings) {
        this(target, new ReflectiveChannelFactory<>(channelType), settings, null, null);
    }

    /**
     * {@code egress}: the outbound proxy for this target, or null for direct connections;
     * {@code tls}: the client TLS context for an https target, or null for the JVM's default trust.
     */
    public UpstreamPools(UpstreamTarget target, Class<? extends SocketChannel> channelType, UpstreamSettings settings,
                         EgressProxy egress, SslContext tls) {
        this(target, new ReflectiveChannelFactory<>(channelType), settings, egress, tls);
    }

    /** With the socket factory given: tests use one that fails, as a process out of descriptors does. */
    UpstreamPools(UpstreamTarget target, ChannelFactory<? extends SocketChannel> channels, UpstreamSettings settings) {
        this(target, channels, settings, null, null);
    }

    private UpstreamPools(UpstreamTarget target, ChannelFactory<? extends SocketChannel> channels,
                          UpstreamSettings settings, EgressProxy egress, SslContext tls) {
        this(target, channels, settings, egress, tls, new ConnectionLimiter(settings.maxConnections(), settings.maxWaiters()));
    }

    private UpstreamPools(UpstreamTarget target, ChannelFactory<? extends SocketChannel> channels,
                          UpstreamSettings settings, EgressProxy egress, SslContext tls, ConnectionLimiter limiter) {
        this.target = target;
        this.channels = channels;
        this.settings = settings;
        this.limiter = limiter;
        this.tlsOverride = tls;
        this.ssl = target.tls() ? (tls != null ? tls : clientTls()) : null;
        this.forwarding = egress != null && egress.kind() == EgressProxy.Kind.HTTP && !target.tls() ? egress : null;
        this.egress = egress == null || forwarding != null ? null : new EgressRoute(egress, settings.timeoutMillis(), resolver);
        this.requestPrefix = forwarding != null ? "http://" + target.hostHeader() + target.basePath() : target.basePath();
        this.proxyAuthorization = forwarding != null && forwarding.user() != null
                ? "Basic " + java.util.Base64.getEncoder().encodeToString((forwarding.user() + ":" + forwarding.password())
                        .getBytes(java.nio.charset.StandardCharsets.UTF_8))
                : null;
    }

    /**
     * The pools of another base URL (contract §15's list) that share this one's HTTP_POOL_MAXSIZE:
     * the cap is on upstream connections, whichever URL they go to.
     */
    public UpstreamPools alongside(UpstreamTarget other, EgressProxy otherEgress) {
        return new UpstreamPools(other, channels, settings, otherEgress, tlsOverride, limiter);
    }

    private static SslContext clientTls() {
        try {
            return SslContextBuilder.forClient().build();
        } catch (SSLException e) {
            throw new IllegalStateException("TLS is not available in this JVM", e);
        }
    }

    public UpstreamTarget target() {
        return target;
    }

    /**
     * What the request target starts with, before the client's path after {@code /v1}: the base
     * URL's path, or the whole base URL when requests are forwarded by an HTTP proxy.
     */
    public String requestPrefix() {
        return requestPrefix;
    }

    /** The {@code Proxy-Authorization} value every forwarded request carries, or null. Never logged. */
    public String proxyAuthorization() {
        return proxyAuthorization;
    }

    /** The requests go to an HTTP proxy that forwards them: its 407 is the proxy's refusal, not the upstream's. */
    public boolean forwardsThroughProxy() {
        return forwarding != null;
    }

    /** The forwarding proxy's text form (password masked), or null. */
    public String forwardingProxy() {
        return forwarding == null ? null : forwarding.toString();
    }

    public UpstreamPool forLoop(EventLoop loop) {
        UpstreamPool pool = pools.get(loop);
        if (pool != null) {
            return pool;
        }
        boolean remote = egress != null && egress.proxy().resolvesRemotely();
        return pools.computeIfAbsent(loop, l -> new UpstreamPool(l, channels, target, ssl, limiter, settings,
                made.getAndIncrement(), remote ? NoopAddressResolverGroup.INSTANCE : resolver,
                remote || dialsLiteral() ? null : resolver.health(), egress, forwarding));
    }

    /** Every connection goes to one address given as such: there is no other address to go to. */
    private boolean dialsLiteral() {
        String host = forwarding != null ? forwarding.host() : egress != null ? egress.proxy().host() : target.host();
        return NetUtil.isValidIpV4Address(host) || NetUtil.isValidIpV6Address(host);
    }

    /** Binds a held connection to the request that now uses it. */
    public static void attach(Channel ch, UpstreamListener listener, boolean headRequest) {
        UpstreamPool.attach(ch, listener, headRequest);
    }

    /** Open upstream connections, busy and idle. */
    public int openConnections() {
        return limiter.open();
    }

    /** Requests waiting for a free connection, across all loops. */
    public int waitingRequests() {
        return limiter.waiting();
    }

    public void close() {
        pools.forEach((loop, pool) -> loop.execute(pool::close));
        resolver.close();
    }
}
