package io.megallm.proxy.upstream;

import io.netty.bootstrap.Bootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ConnectTimeoutException;
import io.netty.channel.EventLoop;
import io.netty.handler.proxy.ProxyHandler;
import io.netty.handler.ssl.SslHandler;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.ScheduledFuture;

import java.net.InetAddress;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;

/**
 * Opening one upstream connection with a permit already held: socket, connect and, for https,
 * the TLS handshake, under one timer of its own. Whatever happens, the waiter hears back once
 * and the permit comes back once. The permit does not rely on the channel's close future
 * alone: a socket that could not be created or registered (out of file descriptors) has a
 * close future that never completes, and its connect future completes on Netty's global
 * executor, not on this loop.
 */
final class ConnectAttempt {

    private final EventLoop loop;
    private final PendingAcquire waiter;
    private final Permit permit;
    /** Told whether the dialled address took the connection; null when there is nothing to choose. */
    private final AddressHealth health;
    private Channel channel;
    private ScheduledFuture<?> timer;
    private boolean answered;

    ConnectAttempt(EventLoop loop, PendingAcquire waiter, Permit permit, AddressHealth health) {
        this.loop = loop;
        this.waiter = waiter;
        this.permit = permit;
        this.health = health;
    }

    /**
     * On the loop. Nothing is answered inside this call, even a failure known at once: the
     * caller of acquire() has not yet got the handle it would cancel.
     */
    void start(Bootstrap bootstrap, String host, int port, long timeoutMillis) {
        ChannelFuture connect;
        try {
            connect = bootstrap.connect(host, port);
        } catch (Throwable t) {
            later(() -> fail(t));
            return;
        }
        channel = connect.channel();
        try {
            // A connection that opened keeps its permit for as long as it lives.
            channel.closeFuture().addListener(f -> permit.release());
        } catch (Throwable t) {
            later(() -> fail(t));
            return;
        }
        timer = loop.schedule(() -> {
            if (!answered && !channel.isActive()) {
                dialled(false);
            }
            fail(new ConnectTimeoutException("upstream connect timed out after " + timeoutMillis + " ms"));
        }, timeoutMillis, TimeUnit.MILLISECONDS);
        // Also a hop when the future is done already, or completes on Netty's global executor
        // (a socket that never registered).
        connect.addListener(f -> later(() -> connected(f)));
    }

    private void connected(Future<? super Void> f) {
        if (!f.isSuccess()) {
            if (!answered) {
                dialled(false);
            }
            fail(f.cause());
            return;
        }
        dialled(true);
        SslHandler tls = channel.pipeline().get(SslHandler.class);
        if (tls == null) {
            ProxyHandler egress = channel.pipeline().get(ProxyHandler.class);
            if (egress == null) {
                succeed();
                return;
            }
            // Through an outbound proxy the socket is up before the tunnel is.
            egress.connectFuture().addListener(t -> {
                if (t.isSuccess()) {
                    succeed();
                } else {
                    fail(t.cause());
                }
            });
            return;
        }
        tls.handshakeFuture().addListener(h -> {
            if (h.isSuccess()) {
                succeed();
            } else {
                fail(h.cause());
            }
        });
    }

    private void succeed() {
        if (answered) {
            // Timed out meanwhile: the channel was closed and the waiter told.
            return;
        }
        answered = true;
        stopTimer();
        waiter.connected(channel, false);
    }

    private void fail(Throwable cause) {
        if (answered) {
            return;
        }
        answered = true;
        stopTimer();
        Channel ch = channel;
        if (ch != null) {
            try {
                ch.close();
            } catch (Throwable ignored) {
                // A channel that never registered may refuse even to close; its permit is below.
            }
        }
        permit.release();
        waiter.failed(cause);
    }

    /** Whether the socket to the dialled address opened: the next connection to its name may go elsewhere. */
    private void dialled(boolean opened) {
        if (health == null || channel == null) {
            return;
        }
        InetAddress address = DialedAddress.of(channel);
        if (address == null) {
            return;
        }
        if (opened) {
            health.opened(address);
        } else {
            health.failed(address);
        }
    }

    /** Runs {@code task} on a later turn of the loop, from any thread. */
    private void later(Runnable task) {
        try {
            loop.execute(task);
        } catch (RejectedExecutionException e) {
            // Shutting down: nobody is left to answer, but the slot must come back.
            permit.release();
        }
    }

    private void stopTimer() {
        if (timer != null) {
            timer.cancel(false);
            timer = null;
        }
    }
}
