package io.megallm.proxy.key;

import io.megallm.proxy.clock.EventClock;
import java.util.function.LongSupplier;

/**
 * The two clocks of the key pool: a monotonic one for rests and trials, and the wall clock
 * only to carry those deadlines across a restart. Tests inject both, so nothing ever sleeps.
 */
public interface KeyClock {

    /** The monotonic clock is the event's ({@link EventClock}): key selection runs inside a read. */
    KeyClock SYSTEM = of(EventClock::nanoTime, System::currentTimeMillis);

    long nanoTime();

    long epochMillis();

    static KeyClock of(LongSupplier nanos, LongSupplier epochMillis) {
        return new KeyClock() {
            @Override
            public long nanoTime() {
                return nanos.getAsLong();
            }

            @Override
            public long epochMillis() {
                return epochMillis.getAsLong();
            }
        };
    }
}
