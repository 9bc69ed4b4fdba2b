package io.megallm.proxy.upstream;

import io.megallm.proxy.clock.EventClock;
import io.netty.bootstrap.Bootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFactory;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.EventLoop;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.socket.SocketChannel;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslHandler;
import io.netty.util.concurrent.ScheduledFuture;

import io.netty.resolver.AddressResolverGroup;

import io.netty.util.NetUtil;

import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLEngine;
import java.net.InetSocketAddress;
import javax.net.ssl.SSLParameters;
import java.util.ArrayDeque;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;

/**
 * Keep-alive connections to the upstream for one event loop. Everything here runs on that
 * loop, so the idle set is a plain deque: no lock and no cross-thread hand-off between the
 * client connection and the upstream connection that serves it.
 */
public final class UpstreamPool {

    private static final long SWEEP_INTERVAL_SECONDS = 5;

    /**
     * How long a connection above {@code HTTP_POOL_CONNECTIONS} may sit idle before it is closed.
     * Closing it the moment it comes back churns under load: with 256 requests in flight and 100
     * idle allowed, the idle set swings above and below the bound every few milliseconds, and a
     * strict bound closed one upstream connection per six requests, only to open another at once
     * (26,598 connects in 166,682 requests under wrk; each a connect, an accept on the upstream, a
     * close and a TIME_WAIT: about 6 us of the proxy's CPU per request at 256 connections). A
     * second of grace follows demand instead: a connection idle that long is not needed.
     */
    static final long SURPLUS_IDLE_GRACE_MILLIS = 1000;

    private final EventLoop loop;
    private final UpstreamTarget target;
    private final ConnectionLimiter limiter;
    /** This loop's share of {@code HTTP_POOL_CONNECTIONS}: the shares of all loops add up to it. */
    private final int maxIdle;
    /** {@code HTTP_POOL_CONNECTIONS=0}: no connection is kept idle, not even for the grace. */
    private final boolean keepNone;
    private final long idleTtlNanos;
    private final long acquireTimeoutMillis;
    private final Bootstrap bootstrap;
    private final String dialHost;
    /** Where a name with several addresses should go next; null when only one address can come up. */
    private final AddressHealth health;
    private final int dialPort;
    private final ArrayDeque<Channel> idle = new ArrayDeque<>();
    private final ScheduledFuture<?> sweeper;
    private final long surplusGraceNanos = TimeUnit.MILLISECONDS.toNanos(SURPLUS_IDLE_GRACE_MILLIS);
    /** A trim of the idle connections above {@code maxIdle} is scheduled. */
    private boolean trimScheduled;
    private boolean closed;
    /** {@code idle.size()} for other loops to read; written only by this loop. */
    private volatile int idleCount;
    /**
     * A connection that closes leaves the idle set at once. One the upstream cut while idle (its
     * keep-alive timeout) stayed counted until a request of this loop polled it: a waiter on
     * another loop asked this one to give up an idle connection, the one given up was already
     * closed, no permit came back, and the waiter got 503 while a live one sat idle elsewhere.
     */
    private final ChannelFutureListener leaveIdle = f -> {
        if (idle.remove(f.channel())) {
            publishIdle();
        }
    };

    UpstreamPool(EventLoop loop, ChannelFactory<? extends SocketChannel> channels, UpstreamTarget target,
                 SslContext ssl, ConnectionLimiter limiter, UpstreamSettings settings, int index,
                 AddressResolverGroup<? extends java.net.SocketAddress> resolver, AddressHealth health,
                 EgressRoute egress, EgressProxy forwarding) {
        this.loop = loop;
        this.target = target;
        // Forwarded requests go to the HTTP proxy; its name is looked up per connection as the upstream's is.
        this.dialHost = forwarding != null ? forwarding.host() : target.host();
        this.health = health;
        this.dialPort = forwarding != null ? forwarding.port() : target.port();
        this.limiter = limiter;
        this.maxIdle = settings.maxIdleOfPool(index);
        this.keepNone = settings.maxIdle() <= 0;
        this.idleTtlNanos = TimeUnit.SECONDS.toNanos(settings.idleTtlSeconds());
        this.acquireTimeoutMillis = settings.timeoutMillis();
        this.bootstrap = new Bootstrap()
                .group(loop)
                .channelFactory(channels)
                .resolver(resolver)
                .option(ChannelOption.AUTO_READ, false)
                .option(ChannelOption.TCP_NODELAY, true)
                .option(ChannelOption.SO_KEEPALIVE, true)
                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, (int) Math.min(settings.timeoutMillis(), Integer.MAX_VALUE))
                .option(ChannelOption.WRITE_BUFFER_WATER_MARK, new WriteBufferWaterMark(32 * 1024, 64 * 1024))
                .handler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        ch.closeFuture().addListener(leaveIdle);
                        ChannelPipeline p = ch.pipeline();
                        if (egress != null) {
                            // First in the pipeline, below TLS: the tunnel carries TLS end to end.
                            egress.addTo(p);
                        }
                        if (ssl != null) {
                            SSLEngine engine = ssl.newEngine(ch.alloc(), target.host(), target.port());
                            SSLParameters params = engine.getSSLParameters();
                            params.setEndpointIdentificationAlgorithm("HTTPS");
                            // The JDK sends SNI on its own only for names with a dot; say it always.
                            if (!NetUtil.isValidIpV4Address(target.host()) && !NetUtil.isValidIpV6Address(target.host())) {
                                params.setServerNames(List.of(new SNIHostName(target.host())));
                            }
                            engine.setSSLParameters(params);
                            SslHandler tls = new SslHandler(engine);
                            // The handshake is under ConnectAttempt's MEGALLM_TIMEOUT (a 504), not
                            // Netty's own 10 s default, which cut a slow handshake early as a 502.
                            tls.setHandshakeTimeoutMillis(0);
                            p.addLast("tls", tls);
                        }
                        // No request encoder: RelayCall writes the request head as bytes.
                        p.addLast("relay", new UpstreamHandler());
                        if (health != null) {
                            // Last added, first in line: it sees the address the socket dials.
                            p.addFirst("dialed", DialedAddress.RECORDER);
                        }
                    }
                });
        limiter.register(this);
        this.sweeper = loop.scheduleAtFixedRate(this::sweep, SWEEP_INTERVAL_SECONDS, SWEEP_INTERVAL_SECONDS,
                TimeUnit.SECONDS);
    }

    EventLoop loop() {
        return loop;
    }

    ConnectionLimiter limiter() {
        return limiter;
    }

    /**
     * A connection for one request/response; the callback runs on this pool's loop, once, unless
     * the returned handle is cancelled first. Call on this pool's loop.
     */
    public PendingAcquire acquire(AcquireCallback callback) {
        Channel ch;
        while ((ch = idle.pollFirst()) != null) {
            if (ch.isActive()) {
                publishIdle();
                callback.onAcquired(ch, true);
                return PendingAcquire.SERVED;
            }
        }
        publishIdle();
        return acquireFresh(callback);
    }

    /** A newly opened connection, never an idle one: the retry after a stale pooled connection. */
    public PendingAcquire acquireFresh(AcquireCallback callback) {
        PendingAcquire waiter = new PendingAcquire(this, callback);
        Permit permit = limiter.tryAcquire();
        if (permit != null) {
            waiter.granted();
            connect(waiter, permit);
            return waiter;
        }
        if (!limiter.enqueue(waiter)) {
            // The queue is full: waiting would only hold the client longer; 503 now.
            waiter.refuse();
            return waiter;
        }
        // Set after the enqueue is safe: whoever serves the waiter stops it on this loop, later.
        waiter.timeout(loop.schedule(waiter::expire, acquireTimeoutMillis, TimeUnit.MILLISECONDS));
        return waiter;
    }

    /** Opens a connection for a waiter that holds {@code permit}; on this loop. */
    void connect(PendingAcquire waiter, Permit permit) {
        new ConnectAttempt(loop, waiter, permit, health).start(bootstrap, dialHost, dialPort, acquireTimeoutMillis);
    }

    /**
     * Takes back a connection whose response ended cleanly. It is kept only when the request
     * was fully written too: an upstream may answer early (a 401 to a large body) while the
     * body is still going out, and the next request must not queue behind it. A waiter of this
     * loop gets it at once; while waiters of other loops are older, it is closed so its permit
     * goes to them. Otherwise it stays armed for reading, so a server that closes it is noticed
     * and the connection leaves the idle set. Above {@code maxIdle} it is kept too, for
     * {@link #SURPLUS_IDLE_GRACE_MILLIS}: the next request of a burst takes it; unless
     * {@code HTTP_POOL_CONNECTIONS} is 0, which keeps none: then it is closed at once.
     */
    public void release(Channel ch) {
        UpstreamHandler handler = ch.pipeline().get(UpstreamHandler.class);
        if (closed || !ch.isActive() || handler == null || !handler.reusable()) {
            discard(ch);
            return;
        }
        handler.detach(EventClock.nanoTime());
        if (limiter.hasWaiters()) {
            PendingAcquire waiter = limiter.claimWaiterOf(this);
            if (waiter != null) {
                waiter.handOver(ch);
            } else {
                ch.close();
            }
            return;
        }
        if (keepNone) {
            ch.close();
            return;
        }
        idle.addFirst(ch);
        publishIdle();
        ch.read();
        if (idle.size() > maxIdle && !trimScheduled) {
            trimScheduled = true;
            loop.schedule(this::trimSurplus, SURPLUS_IDLE_GRACE_MILLIS, TimeUnit.MILLISECONDS);
        }
    }

    /**
     * Closes the idle connections above {@code maxIdle} that have been idle for the grace, oldest
     * first (the tail: the deque is used last-in first-out), and comes back while a surplus is left.
     */
    private void trimSurplus() {
        trimScheduled = false;
        if (closed) {
            return;
        }
        long now = System.nanoTime();
        while (idle.size() > maxIdle) {
            Channel ch = idle.peekLast();
            UpstreamHandler h = ch.pipeline().get(UpstreamHandler.class);
            if (ch.isActive() && h != null && now - h.idleSinceNanos() < surplusGraceNanos) {
                break;
            }
            idle.pollLast();
            ch.close();
        }
        publishIdle();
        if (idle.size() > maxIdle) {
            trimScheduled = true;
            loop.schedule(this::trimSurplus, SURPLUS_IDLE_GRACE_MILLIS, TimeUnit.MILLISECONDS);
        }
    }

    /** Ends a connection that must not be reused (client gone, broken or unfinished response). */
    public void discard(Channel ch) {
        UpstreamHandler handler = ch.pipeline().get(UpstreamHandler.class);
        if (handler != null) {
            handler.detach(System.nanoTime());
        }
        ch.close();
    }

    /** Read from any loop; only an estimate there, enough to pick a loop to reclaim from. */
    int idleCountEstimate() {
        return idleCount;
    }

    /** Asked from any thread by a waiter with no permit: give one idle connection's permit up. */
    void closeOneIdleSoon() {
        try {
            loop.execute(this::closeOneIdle);
        } catch (RejectedExecutionException e) {
            // Shutting down: the idle connections are being closed anyway.
        }
    }

    private void closeOneIdle() {
        // The oldest: the warm ones at the head serve this loop's own next requests.
        Channel ch = idle.pollLast();
        publishIdle();
        if (ch != null) {
            ch.close();
        }
    }

    private void publishIdle() {
        idleCount = idle.size();
    }

    static void attach(Channel ch, UpstreamListener listener, boolean headRequest) {
        ch.pipeline().get(UpstreamHandler.class).attach(listener, headRequest);
    }

    private void sweep() {
        long now = System.nanoTime();
        // Oldest at the tail: the deque is used last-in first-out to keep warm connections warm.
        Iterator<Channel> it = idle.descendingIterator();
        while (it.hasNext()) {
            Channel ch = it.next();
            UpstreamHandler h = ch.pipeline().get(UpstreamHandler.class);
            if (!ch.isActive() || h == null || now - h.idleSinceNanos() >= idleTtlNanos) {
                it.remove();
                ch.close();
            } else {
                break;
            }
        }
        publishIdle();
    }

    void close() {
        closed = true;
        sweeper.cancel(false);
        Channel ch;
        while ((ch = idle.pollFirst()) != null) {
            ch.close();
        }
        publishIdle();
    }
}
