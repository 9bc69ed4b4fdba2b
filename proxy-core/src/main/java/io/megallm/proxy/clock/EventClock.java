package io.megallm.proxy.clock;

import io.netty.util.concurrent.FastThreadLocal;
import io.netty.util.concurrent.Ticker;

/**
 * {@link System#nanoTime()} read once per I/O event instead of once per use. Everything that
 * times a request (its start, each attempt, the upstream's head and end, a relay call's last
 * activity, the pool's idle mark, the access line, the metrics, the key pool) asks for the time
 * while the event loop handles one read, 20-25 times a request at ~19 ns each on a VM's vDSO:
 * as much CPU as parsing the request's head. Nginx reads its clock once per loop turn for the
 * same reason.
 *
 * <p>Inside a scope ({@link #enter()} to {@link #exit()}, around a channel handler's read) every
 * read returns the time taken at the scope's start; a scope entered within another keeps the
 * outer one's time. Outside any scope, and on any thread that never entered one, it is the
 * plain clock. So a cached time never outlives the event it was read for: a timer or a task that
 * runs later reads the clock afresh. The price is resolution: two times read in one event are
 * equal, which for durations in milliseconds and timeouts in seconds is nothing.
 */
public final class EventClock {

    private static final class Scope {
        long now;
        int depth;
    }

    private static final FastThreadLocal<Scope> SCOPE = new FastThreadLocal<>() {
        @Override
        protected Scope initialValue() {
            return new Scope();
        }
    };

    private EventClock() {
    }

    /** The time of the event this thread is handling, else {@link System#nanoTime()}. */
    public static long nanoTime() {
        Scope s = SCOPE.get();
        return s.depth > 0 ? s.now : System.nanoTime();
    }

    /**
     * {@code ticker}'s time. A running event loop's ticker is the system clock less a constant,
     * so its time is taken from this event's, in the ticker's terms: the client timeouts and the
     * silence watch read it a few times a request. Any other ticker (a test's embedded loop, whose
     * time the test moves by hand) is read as it is.
     */
    public static long nanoTime(Ticker ticker) {
        return ticker == Ticker.systemTicker() ? nanoTime() - ticker.initialNanoTime() : ticker.nanoTime();
    }

    /** Starts an event's scope on this thread; pair it with {@link #exit()} in a {@code finally}. */
    public static void enter() {
        Scope s = SCOPE.get();
        if (s.depth++ == 0) {
            s.now = System.nanoTime();
        }
    }

    /** Ends the scope {@link #enter()} started. */
    public static void exit() {
        SCOPE.get().depth--;
    }
}
