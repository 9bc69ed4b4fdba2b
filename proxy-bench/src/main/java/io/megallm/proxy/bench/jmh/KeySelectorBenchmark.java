package io.megallm.proxy.bench.jmh;

import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.key.KeyPool;
import io.megallm.proxy.key.KeySelector;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * {@code KeySelector.next} (the lock-free round robin every request goes through) with 1, 2
 * and 8 threads sharing one pool of 16 keys, of which {@code cooling} rest after a 429 and
 * must be skipped. Average time per selection; with 8 threads on fewer cores the CAS on the
 * shared cursor is what contends.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class KeySelectorBenchmark {

    @State(Scope.Benchmark)
    public static class Pool {
        @Param({"0", "4"})
        public int cooling;

        KeySelector selector;

        @Setup
        public void setup() {
            BenchLogging.quiet();
            KeyPool pool = new KeyPool(System::nanoTime);
            List<String> secrets = new ArrayList<>();
            for (int i = 0; i < 16; i++) {
                secrets.add(String.format("sk-bench-key-%04d-abcdefghijklmnop", i));
            }
            pool.reload(secrets);
            // Cooling keys spread over the ring, so that a scan meets them in runs of one.
            List<ApiKey> keys = pool.keys();
            for (int i = 0; i < cooling; i++) {
                pool.coolDown(keys.get(i * (16 / Math.max(1, cooling))), 429, 3600);
            }
            selector = new KeySelector(pool);
        }
    }

    /** What a request has tried so far: nothing, as for every first attempt. */
    @State(Scope.Thread)
    public static class Tried {
        final ApiKey[] tried = new ApiKey[4];
    }

    @Benchmark
    @Threads(1)
    public ApiKey next1Thread(Pool pool, Tried t) {
        return pool.selector.next(t.tried, 0);
    }

    @Benchmark
    @Threads(2)
    public ApiKey next2Threads(Pool pool, Tried t) {
        return pool.selector.next(t.tried, 0);
    }

    @Benchmark
    @Threads(8)
    public ApiKey next8Threads(Pool pool, Tried t) {
        return pool.selector.next(t.tried, 0);
    }
}
