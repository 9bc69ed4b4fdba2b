package io.megallm.proxy.clock;

import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.util.concurrent.EventExecutor;
import io.netty.util.concurrent.MockTicker;
import io.netty.util.concurrent.Ticker;
import org.junit.jupiter.api.Test;

import java.util.concurrent.TimeUnit;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class EventClockTest {

    /** Waits (without sleeping) until the plain clock has moved past {@code t}. */
    static void tickPast(long t) {
        while (System.nanoTime() - t <= 0) {
            Thread.onSpinWait();
        }
    }

    @Test
    void outsideAScopeItIsThePlainClock() {
        long before = System.nanoTime();
        long t = EventClock.nanoTime();
        assertTrue(t - before >= 0);
        tickPast(t);
        assertTrue(EventClock.nanoTime() - t > 0, "a read outside any scope is fresh");
    }

    @Test
    void insideAScopeEveryReadIsTheScopesStartAndANestedScopeKeepsIt() {
        long before = System.nanoTime();
        EventClock.enter();
        long start;
        try {
            start = EventClock.nanoTime();
            assertTrue(start - before >= 0);
            tickPast(start);
            assertEquals(start, EventClock.nanoTime());
            EventClock.enter();
            try {
                assertEquals(start, EventClock.nanoTime(), "a nested scope keeps the outer time");
            } finally {
                EventClock.exit();
            }
            assertEquals(start, EventClock.nanoTime(), "leaving the nested scope leaves the outer one open");
        } finally {
            EventClock.exit();
        }
        assertTrue(EventClock.nanoTime() - start > 0, "the time never outlives its scope");
    }

    @Test
    void aScopeIsThisThreadsOnly() throws Exception {
        EventClock.enter();
        try {
            long start = EventClock.nanoTime();
            tickPast(start);
            long[] other = new long[1];
            Thread t = new Thread(() -> other[0] = EventClock.nanoTime());
            t.start();
            t.join();
            assertTrue(other[0] - start > 0, "another thread reads its own, plain clock");
        } finally {
            EventClock.exit();
        }
    }

    @Test
    void aRunningLoopsTickerTimeIsTheEventsTimeInTheTickersTerms() throws Exception {
        MultiThreadIoEventLoopGroup group = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
        try {
            EventExecutor loop = group.next();
            Ticker ticker = loop.ticker();
            assertTrue(ticker == Ticker.systemTicker(), "a running loop ticks with the system clock");
            long[] seen = loop.submit(() -> {
                EventClock.enter();
                try {
                    long event = EventClock.nanoTime();
                    long inScope = EventClock.nanoTime(ticker);
                    tickPast(event);
                    return new long[] {event, inScope, EventClock.nanoTime(ticker), ticker.nanoTime()};
                } finally {
                    EventClock.exit();
                }
            }).get(10, TimeUnit.SECONDS);
            assertEquals(seen[0] - ticker.initialNanoTime(), seen[1], "the event's time, less the ticker's start");
            assertEquals(seen[1], seen[2], "one time for the whole event");
            assertTrue(seen[3] - seen[2] > 0, "the ticker itself has moved on");
            long before = ticker.nanoTime();
            long outside = EventClock.nanoTime(ticker);
            assertTrue(outside - before >= 0 && ticker.nanoTime() - outside >= 0, "outside a scope: the ticker now");
        } finally {
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
        }
    }

    @Test
    void anyOtherTickerIsReadAsItIs() {
        MockTicker ticker = Ticker.newMockTicker();
        ticker.advance(5, TimeUnit.SECONDS);
        EventClock.enter();
        try {
            assertEquals(ticker.nanoTime(), EventClock.nanoTime(ticker), "a test's ticker, not the event's time");
        } finally {
            EventClock.exit();
        }
    }
}
