package io.megallm.proxy.clock;

import org.junit.jupiter.api.Test;
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
}
