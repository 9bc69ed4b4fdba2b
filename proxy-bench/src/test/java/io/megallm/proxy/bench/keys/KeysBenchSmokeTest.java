package io.megallm.proxy.bench.keys;

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
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The keys bench for a few seconds, with this build's proxy inside the test's JVM: every run
 * happened, the mock saw each kind of key, and the report was written. It asserts no timing and
 * no efficiency figure: those belong to the real run.
 */
class KeysBenchSmokeTest {

    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void runsBothLoadsAndWritesTheReport(@TempDir Path dir) throws Exception {
        ByteArrayOutputStream console = new ByteArrayOutputStream();
        KeysBench.Plan plan = new KeysBench.Plan(4_000_000_000L, List.of(0.5, 1.5),
                List.of(ProxyLauncher.inProcess("current")), dir.resolve("report"), "smoke test", false,
                KeysBench.SETTINGS);
        List<PoolRun> runs = KeysBench.run(plan, new PrintStream(console, true, StandardCharsets.UTF_8));
        String log = console.toString(StandardCharsets.UTF_8);

        assertEquals(2, runs.size(), log);
        for (PoolRun r : runs) {
            assertEquals((long) Math.floor(r.offeredRps() * 4), r.sent(), log);
            assertTrue(r.succeeded() > 0, "some requests succeeded\n" + log);
            assertTrue(r.upstreamCalls() >= r.upstreamOk(), log);
            assertEquals(4, r.goodputPerSecond().size());
            assertTrue(r.keys().stream().filter(k -> k.role().equals("dead")).allMatch(k -> k.ok() == 0),
                    "dead keys never succeed");
            assertTrue(r.keys().stream().filter(k -> k.role().equals("dead")).anyMatch(k -> k.calls() > 0),
                    "the proxy met a dead key");
            assertTrue(r.keys().stream().anyMatch(k -> k.burstRateLimited() > 0), "the burst was met\n" + log);
        }
        Path report = dir.resolve("report");
        String md = Files.readString(report.resolve(KeysReport.REPORT));
        assertTrue(md.contains("| current | 150 %"), md);
        assertTrue(Files.size(report.resolve(KeysReport.JSON)) > 500);
        assertTrue(Files.size(report.resolve(KeysReport.CHART)) > 1000);
    }

    /** {@code --instances 2 --redis}, shared variant only: both instances took load and reached Redis. */
    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void severalInstancesSharingRedis(@TempDir Path dir) throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(io.megallm.proxy.bench.harness.Tools.which("redis-server") != null,
                "redis-server is not installed");
        ByteArrayOutputStream console = new ByteArrayOutputStream();
        KeysBench.Plan plan = new KeysBench.Plan(3_000_000_000L, List.of(1.5),
                List.of(ProxyLauncher.variant(ProxyLauncher.inProcess("current"), "current ×2 sharing Redis", true)),
                dir.resolve("report"), "smoke test", false, KeysBench.SETTINGS, 2);
        List<PoolRun> runs = KeysBench.run(plan, new PrintStream(console, true, StandardCharsets.UTF_8));
        String log = console.toString(StandardCharsets.UTF_8);
        assertEquals(1, runs.size(), log);
        assertTrue(runs.get(0).succeeded() > 0, "some requests succeeded\n" + log);
        String md = Files.readString(dir.resolve("report").resolve(KeysReport.REPORT));
        assertTrue(md.contains("| current ×2 sharing Redis | 150 %"), md);
        assertTrue(md.contains("2 instances of each version"), md);
    }
}
