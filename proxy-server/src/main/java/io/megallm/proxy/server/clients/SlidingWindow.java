package io.megallm.proxy.server.clients;

import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReferenceFieldUpdater;

/**
 * A count over the last 60 seconds in one-second buckets, lock-free: each bucket is one long
 * holding its second (high 32 bits) and its count (low 32 bits), updated by CAS, so a bucket
 * that turns over and a concurrent add can never lose each other's update. The buckets (~500
 * bytes) are made on the first add: a client file of many keys, most of them idle or without
 * limits, must not cost a kilobyte per client.
 */
final class SlidingWindow {

    static final int SECONDS = 60;
    private static final long COUNT_MASK = 0xffff_ffffL;

    private static final AtomicReferenceFieldUpdater<SlidingWindow, AtomicLongArray> BUCKETS =
            AtomicReferenceFieldUpdater.newUpdater(SlidingWindow.class, AtomicLongArray.class, "buckets");
    /** Null until the first add: every second of the window counts 0. */
    private volatile AtomicLongArray buckets;

    /** Adds {@code n} (may be negative, to undo an add) at second {@code now}. */
    void add(long nowSecond, long n) {
        AtomicLongArray buckets = this.buckets;
        if (buckets == null) {
            BUCKETS.compareAndSet(this, null, new AtomicLongArray(SECONDS));
            buckets = this.buckets;
        }
        int i = (int) Math.floorMod(nowSecond, (long) SECONDS);
        long stamp = nowSecond & COUNT_MASK;
        for (;;) {
            long v = buckets.get(i);
            long count = (v >>> 32) == stamp ? (v & COUNT_MASK) : 0;
            long next = Math.max(0, Math.min(COUNT_MASK, count + n));
            if (buckets.compareAndSet(i, v, stamp << 32 | next)) {
                return;
            }
        }
    }

    /** The total of the 60 seconds ending with {@code nowSecond}. */
    long sum(long nowSecond) {
        AtomicLongArray buckets = this.buckets;
        if (buckets == null) {
            return 0;
        }
        long total = 0;
        for (int back = 0; back < SECONDS; back++) {
            long second = nowSecond - back;
            long v = buckets.get((int) Math.floorMod(second, (long) SECONDS));
            if ((v >>> 32) == (second & COUNT_MASK)) {
                total += v & COUNT_MASK;
            }
        }
        return total;
    }

    /**
     * Seconds until the total falls to {@code below} or less (at least 1): the oldest buckets
     * leave the window first.
     */
    long secondsUntilAtMost(long nowSecond, long below) {
        AtomicLongArray buckets = this.buckets;
        if (buckets == null) {
            return 1;
        }
        long total = sum(nowSecond);
        for (int age = SECONDS - 1; age >= 0 && total > below; age--) {
            long second = nowSecond - age;
            long v = buckets.get((int) Math.floorMod(second, (long) SECONDS));
            if ((v >>> 32) == (second & COUNT_MASK)) {
                total -= v & COUNT_MASK;
            }
            if (total <= below) {
                return SECONDS - age;
            }
        }
        return Math.max(1, total > below ? SECONDS : 1);
    }
}
