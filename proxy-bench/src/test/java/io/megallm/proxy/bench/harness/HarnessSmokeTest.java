package io.megallm.proxy.bench.harness;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The whole harness for a few seconds: the mock and our proxy inside this JVM, direct, and
 * Nginx/HAProxy as processes when they are installed (skipped and reported when not). It
 * checks that every scenario ran and produced a report; it asserts no timing.
 */
class HarnessSmokeTest {

    @Test
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void runsEveryScenarioEndToEndAndWritesTheReport(@TempDir Path dir) throws Exception {
        ByteArrayOutputStream console = new ByteArrayOutputStream();
        Results r = new Harness(BenchConfig.smoke(dir.resolve("report")), new PrintStream(console, true,
                StandardCharsets.UTF_8)).run();
        String log = console.toString(StandardCharsets.UTF_8);

        List<String> ran = r.peers().stream().map(Results.PeerInfo::name).toList();
        assertTrue(ran.contains("direct"), log);
        assertTrue(ran.contains("proxy"), log);
        for (String optional : List.of("nginx", "haproxy")) {
            boolean installed = (optional.equals("nginx") ? Peers.nginxBinary() : Peers.haproxyBinary()) != null;
            if (!installed) {
                assertTrue(r.skipped().stream().anyMatch(s -> s.peer().equals(optional)), optional + " is reported as skipped");
            }
        }

        for (String peer : ran) {
            Results.NonStreamRow ns = r.nonStream().stream().filter(x -> x.peer().equals(peer)).findFirst().orElseThrow();
            assertTrue(ns.ok() > 0, peer + " answered closed-loop requests\n" + log);
            assertEquals(0, ns.errors(), peer + " closed-loop errors\n" + log);
            assertTrue(ns.latency().count() > 0);
            Results.OpenLoopRow ol = r.openLoop().stream().filter(x -> x.peer().equals(peer)).findFirst().orElseThrow();
            assertTrue(ol.ok() > 0, peer + " answered open-loop requests\n" + log);
            Results.StreamRow st = r.streaming().stream().filter(x -> x.peer().equals(peer)).findFirst().orElseThrow();
            assertEquals(st.eventsExpected(), st.eventsReceived(), peer + " relayed every event\n" + log);
            assertEquals(st.eventsExpected(), st.perEvent().count(), peer);
            assertEquals(0, st.errors(), peer + " stream errors\n" + log);
            Results.LargeAnswerRow large = r.largeAnswers().stream().filter(x -> x.peer().equals(peer)).findFirst()
                    .orElseThrow();
            assertEquals(0, large.errors(), peer + " large-answer errors\n" + log);
            assertEquals((long) large.trials() * large.answersPerTrial(), large.answers(), peer);
            assertEquals(r.config().trials(), large.trials(), peer + " every large-answer trial completed\n" + log);
        }
        Results.HeldRow held = r.held().stream().filter(x -> x.peer().equals("proxy")).findFirst().orElseThrow();
        assertEquals(held.streams(), held.established(), log);
        assertEquals(0, held.errors(), log);
        assertFalse(Double.isNaN(held.upstreamClosedSeconds()), "the mock saw every upstream stream end\n" + log);
        Results.SlowReaderRow slow = r.slowReader().get(0);
        assertTrue(slow.bytesRead() > 0, log);
        assertTrue(r.load().size() >= 4, "machine load recorded per scenario");

        Path report = dir.resolve("report").resolve(ReportWriter.REPORT);
        String md = Files.readString(report);
        assertTrue(md.contains("## Non-streaming: throughput and latency, closed loop"), md);
        assertTrue(md.contains("## Streaming: concurrent SSE streams"), md);
        assertTrue(md.contains("## Open streams held"), md);
        assertTrue(md.contains("## Large answers (3 × 64 KiB embeddings-shaped JSON, one keep-alive connection)"), md);
        assertTrue(Files.size(dir.resolve("report").resolve(ReportWriter.JSON)) > 1000);
    }
}
