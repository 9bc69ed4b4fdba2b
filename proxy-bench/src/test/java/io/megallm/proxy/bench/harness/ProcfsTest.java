package io.megallm.proxy.bench.harness;

import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

class ProcfsTest {

    @Test
    void cpuTimeBetweenReadingsIsCountedThreadByThread() {
        Map<Long, Long> before = Map.of(1L, 1_000L, 2L, 5_000_000L, 3L, 700L);
        // Thread 2 ended (its 5 ms before the first reading are not taken off), thread 4 started.
        Map<Long, Long> after = Map.of(1L, 1_600L, 3L, 700L, 4L, 250L);
        assertEquals(600 + 250, Procfs.runtimeNanosBetween(before, after));
    }

    @Test
    void readsEveryThreadOfThisProcess() {
        long pid = ProcessHandle.current().pid();
        Map<Long, Long> threads = Procfs.runtimeNanosByThread(pid);
        assumeFalse(threads.isEmpty(), "no schedstat here: the harness falls back to /proc/<pid>/stat's ticks");
        assertTrue(threads.containsKey(pid), "the main thread's id is the process id");
        assertTrue(threads.size() > 1, "a JVM has more than one thread: " + threads.size());
        assertTrue(threads.values().stream().allMatch(v -> v >= 0));
        assertTrue(Procfs.runtimeNanosByThread(-1).isEmpty());
    }
}
