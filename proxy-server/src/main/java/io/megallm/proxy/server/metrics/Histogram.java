package io.megallm.proxy.server.metrics;

import java.util.concurrent.atomic.LongAdder;

/** A fixed-bucket histogram of durations; recording is a few lock-free adds and no allocation. */
final class Histogram {

    /** Upper bounds in seconds, tuned for LLM calls: from sub-millisecond relay to minutes of streaming. */
    static final double[] BOUNDS = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
        60, 120, 300};

    private final LongAdder[] buckets = new LongAdder[BOUNDS.length];
    private final LongAdder count = new LongAdder();
    private final LongAdder sumNanos = new LongAdder();

    Histogram() {
        for (int i = 0; i < buckets.length; i++) {
            buckets[i] = new LongAdder();
        }
    }

    void recordNanos(long nanos) {
        if (nanos < 0) {
            return;
        }
        double seconds = nanos / 1e9;
        for (int i = 0; i < BOUNDS.length; i++) {
            if (seconds <= BOUNDS[i]) {
                buckets[i].increment();
                break;
            }
        }
        count.increment();
        sumNanos.add(nanos);
    }

    /** Cumulative counts per bound, as the exposition format wants them. */
    long[] cumulative() {
        long[] out = new long[BOUNDS.length];
        long running = 0;
        for (int i = 0; i < BOUNDS.length; i++) {
            running += buckets[i].sum();
            out[i] = running;
        }
        return out;
    }

    long count() {
        return count.sum();
    }

    double sumSeconds() {
        return sumNanos.sum() / 1e9;
    }
}
