package io.megallm.proxy.bench.harness;

import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Reading wrk's and h2load's output, and the image's JVM options staying those of docker/Dockerfile. */
class ExternalLoadTest {

    @Test
    void readsTheLineOfTheWrkScriptsDoneHook() {
        ExternalLoad.WrkOutcome o = ExternalLoad.parseWrk("""
                Running 5s test @ http://127.0.0.1:1234/v1/chat/completions
                  1 threads and 64 connections
                megallm-wrk requests=250000 duration_us=5000000 errors=2 status=1 mean=1012.5 p50=950 p90=1400 p99=2500 p999=4100 max=12000
                """);
        assertEquals(50000, o.throughputRps(), 1e-6);
        assertEquals(250000, o.requests());
        assertEquals(3, o.errors());
        assertEquals(0.95, o.latency().p50Ms(), 1e-9);
        assertEquals(2.5, o.latency().p99Ms(), 1e-9);
        assertEquals(12.0, o.latency().maxMs(), 1e-9);
        assertTrue(Double.isNaN(ExternalLoad.parseWrk("wrk: command not found").throughputRps()));
    }

    @Test
    void theScriptSendsTheHarnessesChatCompletion() {
        String lua = ExternalLoad.wrkScript();
        assertTrue(lua.contains("wrk.method = \"POST\""));
        assertTrue(lua.contains(Requests.CHAT_BODY));
        assertTrue(lua.contains("latency:percentile(99)"));
    }

    @Test
    void readsH2loadsTimeToFirstByte() {
        ExternalLoad.TtfbOutcome o = ExternalLoad.parseH2load("""
                finished in 58.64ms, 170.55 req/s, 145.56KB/s
                requests: 10 total, 10 started, 10 done, 9 succeeded, 1 failed, 0 errored, 0 timeout
                                     min         max         mean         sd        +/- sd
                time for request:    56.43ms     58.16ms     57.93ms       528us    90.00%
                time for connect:       45us       331us       164us        85us    70.00%
                time to 1st byte:      626us      1.01s      7.81ms       547us    90.00%
                """);
        assertEquals(9, o.succeeded());
        assertEquals(1, o.failed());
        assertEquals(0.626, o.minMs(), 1e-9);
        assertEquals(1010, o.maxMs(), 1e-9);
        assertEquals(7.81, o.meanMs(), 1e-9);
        assertEquals(0.547, o.sdMs(), 1e-9);
    }

    @Test
    void theImagesJvmOptionsAreThoseOfTheDockerfile() throws Exception {
        Path dockerfile = Path.of("..", "docker", "Dockerfile");
        List<String> env = Files.readAllLines(dockerfile).stream().filter(l -> l.startsWith("ENV JDK_JAVA_OPTIONS=")).toList();
        assertEquals(1, env.size());
        assertEquals("ENV JDK_JAVA_OPTIONS=\"" + Peers.IMAGE_JDK_JAVA_OPTIONS + "\"", env.get(0));
    }
}
