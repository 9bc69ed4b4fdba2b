package io.megallm.proxy.relay;

import io.netty.channel.embedded.EmbeddedChannel;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** On an embedded event loop with frozen time: deadlines are met by advancing the clock, not by waiting. */
class SilenceWatchTest {

    private EmbeddedChannel channel;
    private SilenceWatch watch;
    private final List<String> ran = new ArrayList<>();

    @BeforeEach
    void setUp() {
        channel = new EmbeddedChannel();
        channel.freezeTime();
        watch = new SilenceWatch(channel.eventLoop());
    }

    @AfterEach
    void tearDown() {
        channel.finishAndReleaseAll();
    }

    private SilenceWatch.Entry entry(String name) {
        return new SilenceWatch.Entry(() -> ran.add(name));
    }

    private void advanceMillis(long ms) {
        channel.advanceTimeBy(ms, TimeUnit.MILLISECONDS);
        channel.runScheduledPendingTasks();
    }

    @Test
    void aTaskRunsAtItsDeadlineAndNotBefore() {
        SilenceWatch.Entry a = entry("a");
        watch.arm(a, TimeUnit.MILLISECONDS.toNanos(100));

        advanceMillis(99);
        assertEquals(List.of(), ran);
        assertTrue(a.armed());

        advanceMillis(1);
        assertEquals(List.of("a"), ran);
        assertFalse(a.armed());
    }

    @Test
    void aDisarmedTaskNeverRuns() {
        SilenceWatch.Entry a = entry("a");
        SilenceWatch.Entry b = entry("b");
        watch.arm(a, TimeUnit.MILLISECONDS.toNanos(100));
        watch.arm(b, TimeUnit.MILLISECONDS.toNanos(200));
        watch.disarm(a);

        advanceMillis(150);
        assertEquals(List.of(), ran, "the wake-up set for a finds nothing due");
        advanceMillis(50);
        assertEquals(List.of("b"), ran);
    }

    @Test
    void tasksRunInDeadlineOrderWhateverTheOrderTheyWereArmedIn() {
        watch.arm(entry("late"), TimeUnit.MILLISECONDS.toNanos(300));
        watch.arm(entry("early"), TimeUnit.MILLISECONDS.toNanos(100));
        watch.arm(entry("middle"), TimeUnit.MILLISECONDS.toNanos(200));
        advanceMillis(50);
        watch.arm(entry("last"), TimeUnit.MILLISECONDS.toNanos(300));

        advanceMillis(100);
        assertEquals(List.of("early"), ran);
        advanceMillis(100);
        assertEquals(List.of("early", "middle"), ran);
        advanceMillis(50);
        assertEquals(List.of("early", "middle", "late"), ran);
        advanceMillis(50);
        assertEquals(List.of("early", "middle", "late", "last"), ran);
    }

    @Test
    void armingAgainMovesTheDeadline() {
        SilenceWatch.Entry a = entry("a");
        watch.arm(a, TimeUnit.MILLISECONDS.toNanos(100));
        advanceMillis(80);
        watch.arm(a, TimeUnit.MILLISECONDS.toNanos(100));

        advanceMillis(80);
        assertEquals(List.of(), ran);
        advanceMillis(20);
        assertEquals(List.of("a"), ran);
    }

    @Test
    void aTaskMayArmItselfAgainWhenItRuns() {
        List<Long> runs = new ArrayList<>();
        SilenceWatch.Entry[] self = new SilenceWatch.Entry[1];
        self[0] = new SilenceWatch.Entry(() -> {
            runs.add(1L);
            if (runs.size() < 3) {
                watch.arm(self[0], TimeUnit.MILLISECONDS.toNanos(100));
            }
        });
        watch.arm(self[0], TimeUnit.MILLISECONDS.toNanos(100));

        for (int i = 0; i < 5; i++) {
            advanceMillis(100);
        }
        assertEquals(3, runs.size());
        assertFalse(self[0].armed());
    }
}
