package io.megallm.proxy.http;

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
class ConnectionWatchTest {

    private EmbeddedChannel channel;
    private ConnectionWatch watch;
    private final List<String> ran = new ArrayList<>();

    @BeforeEach
    void setUp() {
        channel = new EmbeddedChannel();
        channel.freezeTime();
        watch = new ConnectionWatch(channel.eventLoop());
    }

    @AfterEach
    void tearDown() {
        channel.finishAndReleaseAll();
    }

    private ConnectionWatch.Entry entry(String name) {
        return new ConnectionWatch.Entry(() -> ran.add(name));
    }

    private void advanceMillis(long ms) {
        channel.advanceTimeBy(ms, TimeUnit.MILLISECONDS);
        channel.runScheduledPendingTasks();
    }

    private static long ms(long millis) {
        return TimeUnit.MILLISECONDS.toNanos(millis);
    }

    @Test
    void entriesOfEveryKindRunAtTheirDeadlinesInOrder() {
        watch.arm(entry("idle-75"), ConnectionWatch.IDLE, ms(75));
        watch.arm(entry("head-60"), ConnectionWatch.HEAD, ms(60));
        watch.arm(entry("send-10"), ConnectionWatch.SEND, ms(10));
        watch.arm(entry("body-30"), ConnectionWatch.BODY, ms(30));

        advanceMillis(9);
        assertEquals(List.of(), ran);
        advanceMillis(1);
        assertEquals(List.of("send-10"), ran);
        advanceMillis(50);
        assertEquals(List.of("send-10", "body-30", "head-60"), ran);
        advanceMillis(15);
        assertEquals(List.of("send-10", "body-30", "head-60", "idle-75"), ran);
    }

    @Test
    void aShorterDelayInTheSameListIsPutInOrder() {
        watch.arm(entry("a-100"), ConnectionWatch.BODY, ms(100));
        watch.arm(entry("b-100"), ConnectionWatch.BODY, ms(100));
        // A body timer set again for what is left of its silence: earlier than the others.
        watch.arm(entry("c-40"), ConnectionWatch.BODY, ms(40));

        advanceMillis(40);
        assertEquals(List.of("c-40"), ran);
        advanceMillis(60);
        assertEquals(List.of("c-40", "a-100", "b-100"), ran);
    }

    @Test
    void aDisarmedOrReArmedEntryRunsOnlyAtItsLastDeadline() {
        ConnectionWatch.Entry a = entry("a");
        ConnectionWatch.Entry b = entry("b");
        watch.arm(a, ConnectionWatch.HEAD, ms(10));
        watch.arm(b, ConnectionWatch.HEAD, ms(10));
        watch.disarm(b);
        watch.arm(a, ConnectionWatch.IDLE, ms(50));

        advanceMillis(10);
        assertEquals(List.of(), ran);
        assertTrue(a.armed());
        assertFalse(b.armed());
        advanceMillis(40);
        assertEquals(List.of("a"), ran);
        assertFalse(a.armed());
    }

    @Test
    void aZeroDelayMeansNoTimeout() {
        ConnectionWatch.Entry a = entry("a");
        watch.arm(a, ConnectionWatch.SEND, 0);
        assertFalse(a.armed());
        advanceMillis(1000);
        assertEquals(List.of(), ran);
    }

    @Test
    void aTaskMayArmItselfAgain() {
        ConnectionWatch.Entry[] self = new ConnectionWatch.Entry[1];
        int[] runs = {0};
        self[0] = new ConnectionWatch.Entry(() -> {
            if (++runs[0] < 3) {
                watch.arm(self[0], ConnectionWatch.BODY, ms(20));
            }
        });
        watch.arm(self[0], ConnectionWatch.BODY, ms(20));

        advanceMillis(20);
        advanceMillis(20);
        advanceMillis(20);
        assertEquals(3, runs[0]);
        assertFalse(self[0].armed());
    }
}
