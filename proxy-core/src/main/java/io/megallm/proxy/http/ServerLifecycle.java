package io.megallm.proxy.http;

import io.netty.channel.Channel;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.util.concurrent.GlobalEventExecutor;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Counts requests in flight and knows whether the server is draining. The request path only
 * touches an atomic counter and a volatile flag; the lock is taken when a drain is waiting.
 */
public final class ServerLifecycle {

    /** Fired down every client pipeline when a drain starts. */
    public static final Object DRAIN = new Object();

    private final AtomicInteger inFlight = new AtomicInteger();
    private final AtomicInteger activeStreams = new AtomicInteger();
    private final ChannelGroup clients = new DefaultChannelGroup("clients", GlobalEventExecutor.INSTANCE);
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition idle = lock.newCondition();
    private volatile boolean draining;

    void register(Channel client) {
        clients.add(client);
    }

    void requestStarted() {
        inFlight.incrementAndGet();
    }

    void requestEnded() {
        if (inFlight.decrementAndGet() == 0 && draining) {
            lock.lock();
            try {
                idle.signalAll();
            } finally {
                lock.unlock();
            }
        }
    }

    public void streamStarted() {
        activeStreams.incrementAndGet();
    }

    public void streamEnded() {
        activeStreams.decrementAndGet();
    }

    public int inFlight() {
        return inFlight.get();
    }

    public int openConnections() {
        return clients.size();
    }

    public int activeStreams() {
        return activeStreams.get();
    }

    public boolean draining() {
        return draining;
    }

    /** Stops keep-alive: idle connections close now, busy ones after their answer. */
    public void startDrain() {
        draining = true;
        clients.forEach(ch -> ch.pipeline().fireUserEventTriggered(DRAIN));
    }

    /** Waits until no request is in flight or the time is up; true when idle. */
    public boolean awaitIdle(long timeout, TimeUnit unit) throws InterruptedException {
        long deadline = System.nanoTime() + unit.toNanos(timeout);
        lock.lock();
        try {
            while (inFlight.get() > 0) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                idle.awaitNanos(left);
            }
            return true;
        } finally {
            lock.unlock();
        }
    }

    /** Closes every client connection, finished or not. */
    public void closeAll() {
        cutting = true;
        clients.close().awaitUninterruptibly(5, TimeUnit.SECONDS);
    }

    /** True once {@link #closeAll()} began: a connection that closes now was cut by the proxy. */
    boolean cutting() {
        return cutting;
    }

    private volatile boolean cutting;
}
