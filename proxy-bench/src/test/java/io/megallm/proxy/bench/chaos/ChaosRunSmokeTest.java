package io.megallm.proxy.bench.chaos;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The chaos run for a few seconds with few clients, against the proxy jar this build made
 * (the reactor packages proxy-server before proxy-bench's tests run). It checks that the run
 * completes, drives every pattern and writes its report; it asserts no timing and not the verdict
 * (against today's proxy several checks fail, which is what the run is for).
 */
class ChaosRunSmokeTest {

    @Test
    @Timeout(value = 150, unit = TimeUnit.SECONDS)
    void runsEveryPatternAgainstTheProxyJarAndWritesTheReport(@TempDir Path dir) throws Exception {
        Path jar = Path.of("..", "proxy-server", "target", "megallm-proxy.jar");
        assumeTrue(Files.isRegularFile(jar), "proxy jar built by the reactor");
        ByteArrayOutputStream console = new ByteArrayOutputStream();
        ChaosResults r = new ChaosRun(ChaosRun.Settings.smoke(dir, jar),
                new PrintStream(console, true, StandardCharsets.UTF_8)).run();
        String log = console.toString(StandardCharsets.UTF_8);

        for (ChaosResults.PatternRow p : r.patterns()) {
            assertTrue(p.started() > 0, p.pattern() + " started\n" + log);
        }
        assertTrue(r.wellBehaved().ok() > 0, "some well-behaved requests were answered right\n" + log);
        assertEquals(r.wellBehaved().sent(), r.wellBehaved().ok() + r.wellBehaved().excused()
                + r.wellBehaved().failed(), "every checked request judged");
        assertTrue(r.samples().size() >= 3, "RSS sampled\n" + log);
        assertTrue(r.baseline().fds() > 0, "descriptors read from /proc");
        for (String name : new String[] {"well-behaved answers", "RSS flat", "file descriptors back",
                "upstream connections back", "permits back", "no leak report", "proxy alive"}) {
            assertNotNull(r.checks().stream().filter(c -> c.name().equals(name)).findFirst().orElse(null), name);
        }
        String md = Files.readString(dir.resolve(ChaosReport.REPORT));
        assertTrue(md.contains("## Checks"), md);
        assertTrue(md.contains("## Client patterns"), md);
        assertTrue(Files.size(dir.resolve(ChaosReport.JSON)) > 1000);
        assertTrue(Files.size(dir.resolve(ChaosReport.CHART)) > 1000);
    }
}
