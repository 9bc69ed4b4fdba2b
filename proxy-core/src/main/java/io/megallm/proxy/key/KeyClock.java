package io.megallm.proxy.key;

import java.util.function.LongSupplier;

/**
 * The two clocks of the key pool: a monotonic one for rests and trials, and the wall clock
 * only to carry those deadlines across a restart. Tests inject both, so nothing ever sleeps.
 */
public interface KeyClock {

    KeyClock SYSTEM = of(System::nanoTime, System::currentTimeMillis);

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
