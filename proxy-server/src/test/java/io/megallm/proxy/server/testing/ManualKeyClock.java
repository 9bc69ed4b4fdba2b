package io.megallm.proxy.server.testing;

import io.megallm.proxy.key.KeyClock;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/** The key pool's clocks, moved by the test: both advance together, as real time would. */
public final class ManualKeyClock implements KeyClock {

    private final AtomicLong nanos = new AtomicLong(System.nanoTime());
    private final AtomicLong wall = new AtomicLong(System.currentTimeMillis());

    @Override
    public long nanoTime() {
        return nanos.get();
    }

    @Override
    public long epochMillis() {
        return wall.get();
    }

    public void advanceSeconds(long seconds) {
        nanos.addAndGet(TimeUnit.SECONDS.toNanos(seconds));
        wall.addAndGet(TimeUnit.SECONDS.toMillis(seconds));
    }
}
