package io.megallm.proxy.bench.harness;

import java.util.Arrays;

/**
 * Every latency sample of a run, in nanoseconds, in a growing array with a hard cap (samples
 * past the cap are counted, not kept). Not thread-safe: one event loop records.
 */
public final class LatencyRecorder {

    public static final int DEFAULT_CAP = 20_000_000;

    private final int cap;
    private long[] values;
    private int size;
    private long dropped;

    public LatencyRecorder() {
        this(DEFAULT_CAP);
    }

    public LatencyRecorder(int cap) {
        this.cap = cap;
        this.values = new long[Math.min(cap, 1024)];
    }

    public void record(long nanos) {
        if (size == values.length) {
            if (size >= cap) {
                dropped++;
                return;
            }
            values = Arrays.copyOf(values, (int) Math.min(cap, (long) size * 2));
        }
        values[size++] = Math.max(0L, nanos);
    }

    public void addAll(LatencyRecorder other) {
        for (int i = 0; i < other.size; i++) {
            record(other.values[i]);
        }
        dropped += other.dropped;
    }

    public int count() {
        return size;
    }

    public long dropped() {
        return dropped;
    }

    public LatencySummary summary() {
        return Percentiles.summarize(values, size);
    }
}
