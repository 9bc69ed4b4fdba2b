package io.megallm.proxy.upstream;

import io.netty.bootstrap.Bootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
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
import java.util.concurrent.TimeUnit;

/**
 * Keep-alive connections to the upstream for one event loop. Everything here runs on that
 * loop, so the idle set is a plain deque: no lock and no cross-thread hand-off between the
 * client connection and the upstream connection that serves it.
 */
public final class UpstreamPool {

    private static final long SWEEP_INTERVAL_SECONDS = 5;

    private final EventLoop loop;
    private final UpstreamTarget target;
    private final ConnectionLimiter limiter;
    private final int maxIdle;
    private final long idleTtlNanos;
    private final long acquireTimeoutMillis;
    private final Bootstrap bootstrap;
    private final ArrayDeque<Channel> idle = new ArrayDeque<>();
    private final ScheduledFuture<?> sweeper;
    private boolean closed;

    UpstreamPool(EventLoop loop, Class<? extends SocketChannel> channelType, UpstreamTarget target,
                 SslContext ssl, ConnectionLimiter limiter, UpstreamSettings settings,
                 AddressResolverGroup<InetSocketAddress> resolver) {
        this.loop = loop;
        this.target = target;
        this.limiter = limiter;
        this.maxIdle = settings.maxIdlePerLoop();
        this.idleTtlNanos = TimeUnit.SECONDS.toNanos(settings.idleTtlSeconds());
        this.acquireTimeoutMillis = settings.timeoutMillis();
        this.bootstrap = new Bootstrap()
                .group(loop)
                .channel(channelType)
                .resolver(resolver)
                .option(ChannelOption.AUTO_READ, false)
                .option(ChannelOption.TCP_NODELAY, true)
                .option(ChannelOption.SO_KEEPALIVE, true)
                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, (int) Math.min(settings.timeoutMillis(), Integer.MAX_VALUE))
                .option(ChannelOption.WRITE_BUFFER_WATER_MARK, new WriteBufferWaterMark(32 * 1024, 64 * 1024))
                .handler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        ChannelPipeline p = ch.pipeline();
                        if (ssl != null) {
                            SSLEngine engine = ssl.newEngine(ch.alloc(), target.host(), target.port());
                            SSLParameters params = engine.getSSLParameters();
                            params.setEndpointIdentificationAlgorithm("HTTPS");
                            // The JDK sends SNI on its own only for names with a dot; say it always.
                            if (!NetUtil.isValidIpV4Address(target.host()) && !NetUtil.isValidIpV6Address(target.host())) {
                                params.setServerNames(List.of(new SNIHostName(target.host())));
                            }
                            engine.setSSLParameters(params);
                            p.addLast("tls", new SslHandler(engine));
                        }
                        // No request encoder: RelayCall writes the request head as bytes.
                        p.addLast("relay", new UpstreamHandler());
                    }
                });
        this.sweeper = loop.scheduleAtFixedRate(this::sweep, SWEEP_INTERVAL_SECONDS, SWEEP_INTERVAL_SECONDS,
                TimeUnit.SECONDS);
    }

    EventLoop loop() {
        return loop;
    }

    /** A connection for one request/response; the callback runs on this pool's loop. */
    public void acquire(AcquireCallback callback) {
        Channel ch;
        while ((ch = idle.pollFirst()) != null) {
            if (ch.isActive()) {
                callback.onAcquired(ch, true);
                return;
            }
        }
        acquireFresh(callback);
    }

    /** A newly opened connection, never an idle one: the retry after a stale pooled connection. */
    public void acquireFresh(AcquireCallback callback) {
        if (limiter.tryAcquire()) {
            connectWithPermit(callback);
            return;
        }
        PendingAcquire waiter = new PendingAcquire(this, callback);
        waiter.timeout(loop.schedule(() -> {
            if (limiter.remove(waiter)) {
                callback.onAcquireFailed(new IllegalStateException("no free upstream connection"), true);
            }
        }, acquireTimeoutMillis, TimeUnit.MILLISECONDS));
        limiter.enqueue(waiter);
    }

    void connectWithPermit(AcquireCallback callback) {
        ChannelFuture connect;
        try {
            connect = bootstrap.connect(target.host(), target.port());
        } catch (RuntimeException e) {
            limiter.release();
            callback.onAcquireFailed(e, false);
            return;
        }
        Channel ch = connect.channel();
        // The permit lives as long as the channel, however it ends.
        ch.closeFuture().addListener(f -> limiter.release());
        connect.addListener(f -> {
            if (!f.isSuccess()) {
                ch.close();
                callback.onAcquireFailed(f.cause(), false);
                return;
            }
            SslHandler tls = ch.pipeline().get(SslHandler.class);
            if (tls == null) {
                callback.onAcquired(ch, false);
                return;
            }
            tls.handshakeFuture().addListener(h -> {
                if (h.isSuccess()) {
                    callback.onAcquired(ch, false);
                } else {
                    ch.close();
                    callback.onAcquireFailed(h.cause(), false);
                }
            });
        });
    }

    /**
     * Takes back a connection whose response ended cleanly. It stays armed for reading, so a
     * server that closes it is noticed and the connection leaves the idle set.
     */
    public void release(Channel ch) {
        UpstreamHandler handler = ch.pipeline().get(UpstreamHandler.class);
        if (closed || !ch.isActive() || handler == null || idle.size() >= maxIdle || limiter.hasWaiters()) {
            ch.close();
            return;
        }
        handler.detach(System.nanoTime());
        idle.addFirst(ch);
        ch.read();
    }

    /** Ends a connection that must not be reused (client gone, broken or unfinished response). */
    public void discard(Channel ch) {
        UpstreamHandler handler = ch.pipeline().get(UpstreamHandler.class);
        if (handler != null) {
            handler.detach(System.nanoTime());
        }
        ch.close();
    }

    static void attach(Channel ch, UpstreamListener listener, boolean headRequest) {
        ch.pipeline().get(UpstreamHandler.class).attach(listener, headRequest);
    }

    int idleCount() {
        return idle.size();
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
    }

    void close() {
        closed = true;
        sweeper.cancel(false);
        Channel ch;
        while ((ch = idle.pollFirst()) != null) {
            ch.close();
        }
    }
}
