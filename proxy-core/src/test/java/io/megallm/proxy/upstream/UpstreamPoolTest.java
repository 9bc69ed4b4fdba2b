package io.megallm.proxy.upstream;

import io.megallm.proxy.testing.MockUpstream;
import io.netty.channel.Channel;
import io.netty.channel.ChannelException;
import io.netty.channel.ChannelFactory;
import io.netty.channel.ConnectTimeoutException;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.net.ServerSocket;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Contract §3 HTTP_POOL_MAXSIZE and §9 (every permit comes back, a waiter whose client left is
 * never served), over real sockets to a {@link MockUpstream}, on two real event loops.
 */
class UpstreamPoolTest {

    private static final long LONG_WAIT_MS = 60_000;

    private EventLoopGroup group;
    private EventLoop loopA;
    private EventLoop loopB;
    private MockUpstream upstream;
    private UpstreamPools pools;

    @BeforeEach
    void start() throws Exception {
        group = new MultiThreadIoEventLoopGroup(2, NioIoHandler.newFactory());
        loopA = group.next();
        loopB = group.next();
        assertNotSame(loopA, loopB);
        upstream = new MockUpstream();
    }

    @AfterEach
    void stop() {
        if (pools != null) {
            pools.close();
        }
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        upstream.close();
    }

    private UpstreamPools pools(int max, long timeoutMillis, ChannelFactory<? extends SocketChannel> channels) {
        return pools("http://127.0.0.1:" + upstream.port() + "/v1", max, timeoutMillis, channels);
    }

    private UpstreamPools pools(String url, int max, long timeoutMillis, ChannelFactory<? extends SocketChannel> channels) {
        pools = new UpstreamPools(UpstreamTarget.parse(url), channels,
                new UpstreamSettings(max, 100, timeoutMillis, 240, 2));
        return pools;
    }

    private static <T> T on(EventLoop loop, Callable<T> task) throws Exception {
        return loop.submit(task).get(10, TimeUnit.SECONDS);
    }

    /** Runs after every task the loop already has: close listeners, hand-overs, grants. */
    private static void settle(EventLoop loop) throws Exception {
        on(loop, () -> null);
    }

    private static void awaitOpen(UpstreamPools pools, int expected, EventLoop... loops) throws Exception {
        for (int i = 0; i < 1000 && pools.openConnections() != expected; i++) {
            for (EventLoop l : loops) {
                settle(l);
            }
        }
        assertEquals(expected, pools.openConnections(), "open upstream connections");
    }

    /** Records what the pool answered, and on which thread. */
    private static final class Recorder implements AcquireCallback {
        final EventLoop loop;
        final CompletableFuture<Channel> acquired = new CompletableFuture<>();
        final CompletableFuture<Throwable> failed = new CompletableFuture<>();
        final AtomicInteger calls = new AtomicInteger();
        volatile boolean exhausted;
        volatile boolean reused;
        volatile boolean onLoop = true;

        Recorder(EventLoop loop) {
            this.loop = loop;
        }

        @Override
        public void onAcquired(Channel channel, boolean reused) {
            onLoop &= loop.inEventLoop();
            calls.incrementAndGet();
            this.reused = reused;
            acquired.complete(channel);
        }

        @Override
        public void onAcquireFailed(Throwable cause, boolean exhausted) {
            onLoop &= loop.inEventLoop();
            calls.incrementAndGet();
            this.exhausted = exhausted;
            failed.complete(cause);
        }

        Channel channel() throws Exception {
            return acquired.get(20, TimeUnit.SECONDS);
        }
    }

    private PendingAcquire acquire(EventLoop loop, Recorder r) throws Exception {
        UpstreamPool pool = pools.forLoop(loop);
        return on(loop, () -> pool.acquire(r));
    }

    // ---- finding 3: every permit comes back, the callback always hears back ----------------------

    @Test
    void aSocketThatCannotBeCreatedFailsTheAttemptAndGivesItsPermitBack() throws Exception {
        AtomicInteger made = new AtomicInteger();
        pools(1, LONG_WAIT_MS, () -> {
            if (made.getAndIncrement() == 0) {
                // What NioSocketChannel's constructor throws when the process is out of descriptors.
                throw new ChannelException("Failed to open a socket.", new java.net.SocketException("Too many open files"));
            }
            return new NioSocketChannel();
        });
        Recorder first = new Recorder(loopA);
        acquire(loopA, first);
        Throwable cause = first.failed.get(10, TimeUnit.SECONDS);
        assertInstanceOf(ChannelException.class, cause);
        assertFalse(first.exhausted);
        assertTrue(first.onLoop, "the callback runs on the request's loop");
        awaitOpen(pools, 0, loopA);

        Recorder second = new Recorder(loopA);
        acquire(loopA, second);
        assertTrue(second.channel().isActive(), "the only permit came back and serves the next request");
        assertEquals(1, first.calls.get());
    }

    /** A socket that opened but could not be registered: its close future never completes. */
    private static final class UnregistrableChannel extends NioSocketChannel {
        @Override
        protected boolean isCompatible(io.netty.channel.EventLoop loop) {
            return false;
        }
    }

    @Test
    void aSocketThatCannotBeRegisteredFailsTheAttemptAndGivesItsPermitBack() throws Exception {
        AtomicInteger made = new AtomicInteger();
        pools(1, LONG_WAIT_MS, () -> made.getAndIncrement() == 0 ? new UnregistrableChannel() : new NioSocketChannel());
        Recorder first = new Recorder(loopA);
        acquire(loopA, first);
        first.failed.get(10, TimeUnit.SECONDS);
        assertFalse(first.exhausted);
        assertTrue(first.onLoop, "the callback runs on the request's loop");
        awaitOpen(pools, 0, loopA);

        Recorder second = new Recorder(loopA);
        acquire(loopA, second);
        assertTrue(second.channel().isActive());
    }

    @Test
    void aTlsHandshakeThatNeverCompletesEndsWithAConnectTimeout() throws Exception {
        try (ServerSocket silent = new ServerSocket(0, 50, java.net.InetAddress.getLoopbackAddress())) {
            List<Socket> accepted = new ArrayList<>();
            Thread acceptor = new Thread(() -> {
                try {
                    while (true) {
                        accepted.add(silent.accept());
                    }
                } catch (Exception closed) {
                    // test over
                }
            });
            acceptor.start();
            pools("https://127.0.0.1:" + silent.getLocalPort() + "/v1", 1, 300, NioSocketChannel::new);
            Recorder r = new Recorder(loopA);
            acquire(loopA, r);
            Throwable cause = r.failed.get(20, TimeUnit.SECONDS);
            assertInstanceOf(ConnectTimeoutException.class, cause, String.valueOf(cause));
            assertFalse(r.exhausted);
            awaitOpen(pools, 0, loopA);
            silent.close();
            acceptor.join(10_000);
            for (Socket s : accepted) {
                s.close();
            }
        }
    }

    // ---- finding 4: cancellable waiters, bounded queue, hand-over on the same loop ---------------

    @Test
    void aCancelledWaiterIsNeverServedAndHoldsNoPermit() throws Exception {
        pools(1, LONG_WAIT_MS, NioSocketChannel::new);
        Recorder holder = new Recorder(loopA);
        acquire(loopA, holder);
        Channel held = holder.channel();

        Recorder gone = new Recorder(loopA);
        PendingAcquire goneWait = acquire(loopA, gone);
        Recorder next = new Recorder(loopA);
        acquire(loopA, next);
        assertEquals(2, pools.waitingRequests());
        on(loopA, () -> {
            goneWait.cancel();
            return null;
        });
        assertEquals(1, pools.waitingRequests());

        UpstreamPool pool = pools.forLoop(loopA);
        on(loopA, () -> {
            pool.discard(held);
            return null;
        });
        Channel served = next.channel();
        assertTrue(served.isActive());
        assertEquals(0, gone.calls.get(), "the cancelled waiter heard nothing");
        assertFalse(gone.acquired.isDone());
        assertEquals(0, pools.waitingRequests());
        on(loopA, () -> {
            pool.discard(served);
            return null;
        });
        awaitOpen(pools, 0, loopA);
        assertEquals(0, gone.calls.get());
    }

    @Test
    void aFullWaitQueueIsAnImmediate503() throws Exception {
        pools(1, LONG_WAIT_MS, NioSocketChannel::new);
        Recorder holder = new Recorder(loopA);
        acquire(loopA, holder);
        Channel held = holder.channel();
        int bound = new UpstreamSettings(1, 100, LONG_WAIT_MS, 240, 2).maxWaiters();
        List<PendingAcquire> queued = new ArrayList<>();
        List<Recorder> waiting = new ArrayList<>();
        for (int i = 0; i < bound; i++) {
            Recorder r = new Recorder(loopA);
            waiting.add(r);
            queued.add(acquire(loopA, r));
        }
        assertEquals(bound, pools.waitingRequests());
        Recorder overflow = new Recorder(loopA);
        UpstreamPool pool = pools.forLoop(loopA);
        // Answered inside the call: no wait at all.
        assertTrue(on(loopA, () -> {
            pool.acquire(overflow);
            return overflow.failed.isDone();
        }));
        assertTrue(overflow.exhausted);
        on(loopA, () -> {
            queued.forEach(PendingAcquire::cancel);
            pool.discard(held);
            return null;
        });
        assertEquals(0, pools.waitingRequests());
        awaitOpen(pools, 0, loopA);
        for (Recorder r : waiting) {
            assertEquals(0, r.calls.get());
        }
    }

    @Test
    void aReleasedConnectionGoesStraightToAWaiterOfItsLoop() throws Exception {
        pools(1, LONG_WAIT_MS, NioSocketChannel::new);
        Recorder holder = new Recorder(loopA);
        acquire(loopA, holder);
        Channel held = holder.channel();
        Recorder waiter = new Recorder(loopA);
        acquire(loopA, waiter);
        UpstreamPool pool = pools.forLoop(loopA);
        on(loopA, () -> {
            pool.release(held);
            return null;
        });
        assertSame(held, waiter.channel(), "the same keep-alive connection, not a new one");
        assertTrue(waiter.reused);
        assertEquals(1, pools.openConnections());
    }

    // ---- finding 5: idle connections of one loop do not starve waiters of another --------------

    @Test
    void aWaiterOnOneLoopGetsThePermitOfAnIdleConnectionOnAnother() throws Exception {
        pools(1, LONG_WAIT_MS, NioSocketChannel::new);
        Recorder onA = new Recorder(loopA);
        acquire(loopA, onA);
        Channel idleOnA = onA.channel();
        UpstreamPool poolA = pools.forLoop(loopA);
        on(loopA, () -> {
            poolA.release(idleOnA);
            return null;
        });
        assertEquals(1, pools.openConnections());

        Recorder onB = new Recorder(loopB);
        acquire(loopB, onB);
        // Served long before the 240 s idle lifetime or the 60 s wait could end.
        Channel served = onB.channel();
        assertTrue(served.isActive());
        assertTrue(onB.onLoop);
        assertFalse(idleOnA.isActive(), "loop A gave its idle connection up");
        assertEquals(1, pools.openConnections());
    }

    /**
     * Idle connections the upstream closed (its keep-alive timeout) leave the idle set when they
     * close, not when a request of their loop next looks: a waiter on a third loop asks the loop
     * with the most idle connections to give one up, and a loop whose idle set held only closed
     * ones gave up nothing while a live idle connection sat on another loop. The waiter got 503.
     */
    @Test
    void connectionsTheUpstreamClosedWhileIdleDoNotHideALiveIdleOneFromAWaiter() throws Exception {
        EventLoopGroup three = new MultiThreadIoEventLoopGroup(3, NioIoHandler.newFactory());
        java.util.concurrent.BlockingQueue<Socket> accepted = new java.util.concurrent.LinkedBlockingQueue<>();
        try (ServerSocket server = new ServerSocket(0, 50, java.net.InetAddress.getLoopbackAddress())) {
            Thread acceptor = new Thread(() -> {
                try {
                    while (true) {
                        accepted.add(server.accept());
                    }
                } catch (java.io.IOException e) {
                    // closed at the end of the test
                }
            });
            acceptor.setDaemon(true);
            acceptor.start();
            EventLoop a = three.next();
            EventLoop b = three.next();
            EventLoop c = three.next();
            // The waiter's 5 s is only how long a failing run takes: a passing one is served at once.
            pools = new UpstreamPools(UpstreamTarget.parse("http://127.0.0.1:" + server.getLocalPort() + "/v1"),
                    NioSocketChannel::new, new UpstreamSettings(2, 100, 5_000, 240, 3));
            UpstreamPool poolA = pools.forLoop(a);
            Recorder a1 = new Recorder(a);
            Recorder a2 = new Recorder(a);
            acquire(a, a1);
            acquire(a, a2);
            Channel ca1 = a1.channel();
            Channel ca2 = a2.channel();
            on(a, () -> {
                poolA.release(ca1);
                poolA.release(ca2);
                return null;
            });
            // The upstream cuts both idle connections: their permits come back, loop A's idle set
            // is left with two closed connections.
            accepted.poll(20, TimeUnit.SECONDS).close();
            accepted.poll(20, TimeUnit.SECONDS).close();
            ca1.closeFuture().get(20, TimeUnit.SECONDS);
            ca2.closeFuture().get(20, TimeUnit.SECONDS);
            awaitOpen(pools, 0, a);
            // Loop B: one connection busy, one idle; the cap of 2 is reached.
            UpstreamPool poolB = pools.forLoop(b);
            Recorder b1 = new Recorder(b);
            Recorder b2 = new Recorder(b);
            acquire(b, b1);
            acquire(b, b2);
            Channel cb1 = b1.channel();
            b2.channel();
            on(b, () -> {
                poolB.release(cb1);
                return null;
            });
            assertEquals(2, pools.openConnections());
            Recorder waiter = new Recorder(c);
            acquire(c, waiter);
            CompletableFuture.anyOf(waiter.acquired, waiter.failed).get(20, TimeUnit.SECONDS);
            assertFalse(waiter.failed.isDone(), "the waiter got " + waiter.failed.getNow(null)
                    + " while loop B had an idle connection");
            assertFalse(cb1.isActive(), "loop B gave its idle connection up");
        } finally {
            if (pools != null) {
                pools.close();
                pools = null;
            }
            three.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
    }

    // ---- idle connections above HTTP_POOL_CONNECTIONS: kept for a grace, not churned ----------

    @Test
    void idleConnectionsAboveTheBoundServeTheNextRequestsAndCloseOnceTheyStayUnused() throws Exception {
        pools = new UpstreamPools(UpstreamTarget.parse("http://127.0.0.1:" + upstream.port() + "/v1"),
                NioSocketChannel::new, new UpstreamSettings(10, 1, LONG_WAIT_MS, 240, 1));
        UpstreamPool pool = pools.forLoop(loopA);
        List<Channel> first = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            Recorder r = new Recorder(loopA);
            acquire(loopA, r);
            first.add(r.channel());
        }
        on(loopA, () -> {
            first.forEach(pool::release);
            return null;
        });
        // A burst above the bound of 1 comes back and goes out again: the same three connections.
        List<Channel> second = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            Recorder r = new Recorder(loopA);
            acquire(loopA, r);
            assertTrue(r.reused, "a kept connection, not a new one");
            second.add(r.channel());
        }
        assertTrue(second.containsAll(first));
        assertEquals(3, pools.openConnections());
        on(loopA, () -> {
            second.forEach(pool::release);
            return null;
        });
        // Unused for the grace, the two above the bound close, the longest idle first (released
        // first: the idle set is last-in first-out); the bound's one, the warmest, stays.
        second.get(0).closeFuture().get(20, TimeUnit.SECONDS);
        second.get(1).closeFuture().get(20, TimeUnit.SECONDS);
        awaitOpen(pools, 1, loopA);
        Recorder again = new Recorder(loopA);
        acquire(loopA, again);
        assertTrue(again.reused);
        assertSame(second.get(2), again.channel());
    }

    // ---- HTTP_POOL_CONNECTIONS is a total over the loops, not rounded up per loop -------------

    private List<Channel> oneConnectionOnEachLoop(int maxIdle) throws Exception {
        pools = new UpstreamPools(UpstreamTarget.parse("http://127.0.0.1:" + upstream.port() + "/v1"),
                NioSocketChannel::new, new UpstreamSettings(10, maxIdle, LONG_WAIT_MS, 240, 2));
        Recorder onA = new Recorder(loopA);
        acquire(loopA, onA);
        Recorder onB = new Recorder(loopB);
        acquire(loopB, onB);
        Channel a = onA.channel();
        Channel b = onB.channel();
        assertEquals(2, pools.openConnections());
        UpstreamPool poolA = pools.forLoop(loopA);
        UpstreamPool poolB = pools.forLoop(loopB);
        on(loopA, () -> {
            poolA.release(a);
            return null;
        });
        on(loopB, () -> {
            poolB.release(b);
            return null;
        });
        return List.of(a, b);
    }

    @Test
    void oneIdleConnectionAllowedOverTwoLoopsIsKeptByOneLoopOnly() throws Exception {
        List<Channel> released = oneConnectionOnEachLoop(1);
        // Loop A's pool was made first and holds the one idle place; B's share is 0, so its
        // connection closes once idle for the grace (it used to be kept: each loop rounded up to 1).
        released.get(1).closeFuture().get(20, TimeUnit.SECONDS);
        awaitOpen(pools, 1, loopA, loopB);
        assertTrue(released.get(0).isActive(), "the one idle connection allowed is kept");
        Recorder again = new Recorder(loopA);
        acquire(loopA, again);
        assertTrue(again.reused);
        assertSame(released.get(0), again.channel());
    }

    @Test
    void zeroIdleConnectionsAllowedClosesEveryConnectionAfterItsAnswer() throws Exception {
        List<Channel> released = oneConnectionOnEachLoop(0);
        released.get(0).closeFuture().get(20, TimeUnit.SECONDS);
        released.get(1).closeFuture().get(20, TimeUnit.SECONDS);
        awaitOpen(pools, 0, loopA, loopB);
    }

    @Test
    void theIdleSharesOfTheLoopsAddUpToTheSettingExactly() {
        int[][] cases = {{0, 2}, {1, 2}, {1, 8}, {100, 1}, {100, 2}, {100, 3}, {100, 64}, {7, 3}, {5, 200}};
        for (int[] c : cases) {
            UpstreamSettings s = new UpstreamSettings(10_000, c[0], 1000, 240, c[1]);
            int sum = 0;
            int most = 0;
            int least = Integer.MAX_VALUE;
            for (int i = 0; i < c[1]; i++) {
                int share = s.maxIdleOfPool(i);
                sum += share;
                most = Math.max(most, share);
                least = Math.min(least, share);
            }
            assertEquals(c[0], sum, "HTTP_POOL_CONNECTIONS=" + c[0] + " over " + c[1] + " loops");
            assertTrue(most - least <= 1, "an even split");
            assertEquals(0, s.maxIdleOfPool(c[1]), "a pool past the loops keeps none");
        }
    }
}
