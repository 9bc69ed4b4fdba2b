package io.megallm.proxy.upstream;

import io.netty.channel.socket.nio.NioSocketChannel;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Contract §15: the first base URL while it answers, a failed one paused 1 s, doubling, then tried again. */
class BaseUrlsTest {

    private long now = 1_000_000_000L;

    private BaseUrls urls(int n) {
        UpstreamSettings settings = new UpstreamSettings(10, 1, 1000, 60, 1);
        UpstreamPools first = new UpstreamPools(UpstreamTarget.parse("http://a.example/v1"), NioSocketChannel.class, settings);
        List<UpstreamPools> all = new java.util.ArrayList<>(List.of(first));
        for (int i = 1; i < n; i++) {
            all.add(first.alongside(UpstreamTarget.parse("http://u" + i + ".example/v1"), null));
        }
        return new BaseUrls(all, () -> now);
    }

    private void advance(double seconds) {
        now += (long) (seconds * TimeUnit.SECONDS.toNanos(1));
    }

    @Test
    void theFirstIsUsedWhileItAnswersAndAFailedOneIsPausedWithADoublingPause() {
        BaseUrls u = urls(3);
        assertEquals(0, u.pick(0));
        u.failed(0, null);
        assertEquals("paused", u.state(0));
        assertEquals(1, u.pick(0));
        advance(1);
        assertEquals(0, u.pick(0), "tried again after 1 s");
        u.failed(0, null);
        advance(1.5);
        assertEquals(1, u.pick(0), "the second failure in a row pauses it 2 s");
        advance(0.5);
        assertEquals(0, u.pick(0));
        u.succeeded(0);
        u.failed(0, null);
        advance(1);
        assertEquals(0, u.pick(0), "an answer restarts the doubling");
    }

    @Test
    void aRequestSkipsTheUrlsItFailedOnAndAllPausedGivesTheOneBackFirst() {
        BaseUrls u = urls(3);
        assertEquals(2, u.pick(0b011));
        assertEquals(-1, u.pick(0b111));
        u.failed(0, null);
        advance(0.2);
        u.failed(1, null);
        advance(0.2);
        u.failed(2, null);
        assertEquals(0, u.pick(0), "every URL paused: the one whose pause ends first");
        for (int i = 0; i < 10; i++) {
            u.failed(1, null);
        }
        advance(100);
        assertEquals(0, u.pick(0));
        assertEquals("available", u.state(1), "pauses are capped at 60 s");
    }
}
