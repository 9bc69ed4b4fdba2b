package io.megallm.proxy.bench.harness;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import io.megallm.proxy.bench.harness.Results.Entry;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ReportWriterTest {

    static LatencySummary lat(double p50, double p99) {
        return new LatencySummary(1000, p50, p50, p50 * 1.5, p99, p99 * 2, p99 * 3);
    }

    /** A run with fixed numbers: proxy 20,000 req/s against Nginx 16,000 and direct 40,000 at 64 connections. */
    static Results fixed(Path out) {
        BenchConfig cfg = BenchConfig.quick().withOutDir(out);
        List<Results.NonStreamRow> ns = List.of(
                new Results.NonStreamRow("direct", 64, 2, 40000, List.of(39000.0, 41000.0), lat(1.0, 2.0), 80000, 0, Double.NaN),
                new Results.NonStreamRow("nginx", 64, 2, 16000, List.of(16000.0, 16000.0), lat(3.0, 8.0), 32000, 0, 60.0),
                new Results.NonStreamRow("proxy", 64, 2, 20000, List.of(19000.0, 21000.0), lat(2.5, 6.0), 40000, 0, 50.0),
                new Results.NonStreamRow("proxy", 16, 2, 18000, List.of(18000.0, 18000.0), lat(0.8, 2.0), 36000, 3, 52.0));
        List<Results.NonStreamRow> wrk = List.of(
                new Results.NonStreamRow("nginx", 64, 2, 16000, List.of(16000.0, 16000.0), lat(3.0, 8.0), 32000, 0, 60.0),
                new Results.NonStreamRow("proxy", 64, 2, 17000, List.of(17000.0, 17000.0), lat(2.0, 7.0), 34000, 0, 55.0));
        List<Results.TtfbRow> ttfb = List.of(
                new Results.TtfbRow("nginx", 100, 2, 200, 0, 0.5, 1.5, 3.0, 0.4),
                new Results.TtfbRow("proxy", 100, 2, 200, 0, 0.4, 1.2, 2.5, 0.3));
        List<Results.OpenLoopRow> ol = List.of(
                new Results.OpenLoopRow("direct", 64, 8000, 7999, lat(0.2, 0.5), 16000, 0),
                new Results.OpenLoopRow("nginx", 64, 8000, 7998, lat(0.4, 1.5), 16000, 0),
                new Results.OpenLoopRow("proxy", 64, 8000, 8000, lat(0.3, 1.25), 16000, 0));
        List<Results.StreamRow> st = List.of(
                new Results.StreamRow("direct", 100, 40, 25, 2, 8000, 8000, 200, lat(0.5, 1.0), List.of(0.9, 1.1), lat(0.1, 0.3), 0),
                new Results.StreamRow("nginx", 100, 40, 25, 2, 8000, 8000, 200, lat(0.9, 2.0), List.of(1.2, 4.4), lat(0.2, 0.9), 0),
                new Results.StreamRow("proxy", 100, 40, 25, 2, 8000, 7990, 200, lat(0.7, 1.5), List.of(1.4, 1.6), lat(0.15, 0.6), 1));
        List<Results.HeldRow> held = List.of(
                new Results.HeldRow("proxy", 1000, 1000, 1000, 0, 90, 140, 25.5, 0.12, 4),
                new Results.HeldRow("nginx", 1000, 1000, 1000, 0, 4, 30, Double.NaN, 0.05, 4));
        List<Results.SlowReaderRow> slow = List.of(
                new Results.SlowReaderRow("proxy", 8, 81920, 10.2, 150, 151, 152, 120, 7880, List.of(150.0, 152.0, 151.0)));
        // 4 MiB answers: proxy 5.0 ms mean against Nginx's 4.0, CPU 4.9 against 3.5 ms; one of its trials failed.
        List<Results.LargeAnswerRow> large = List.of(
                new Results.LargeAnswerRow("direct", 4L << 20, 5, 2, 10, 0, List.of(2.0, 2.2), 2.1, 2.05, 3.0,
                        Double.NaN, 1997.2),
                new Results.LargeAnswerRow("nginx", 4L << 20, 5, 2, 10, 0, List.of(4.0, 4.0), 4.0, 3.9, 5.0, 3.5,
                        1048.6),
                new Results.LargeAnswerRow("proxy", 4L << 20, 5, 1, 5, 1, List.of(5.0), 5.0, 4.8, 6.0, 4.9, 838.9));
        List<Results.ProfileSummary> prof = List.of(new Results.ProfileSummary("non-stream, 64 connections",
                "proxy-nonstream.jfr", 5, 1234,
                List.of(new Entry("megallm-io-*", 80.0, 987)),
                List.of(new Entry("io.netty.handler.codec.http.HttpObjectDecoder.decode", 20.0, 246)),
                List.of(new Entry("io.megallm.proxy.relay.RelayCall.onContent", 12.5, 154)),
                List.of(new Entry("io.netty.channel.epoll.Native.epollWait", 60.0, 600)),
                List.of(new Entry("java.lang.StringBuilder.toString:123", 30.0, 3000)),
                List.of(new Entry("io.megallm.proxy.server.access.AccessLog.onEnd:40", 40.0, 4000)),
                List.of(new Entry("byte[]", 50.0, 5000)),
                List.of(new Entry("megallm-io-*", 70.0, 7000)), 123.4, 7, 12.5, 0,
                "Load during the recording: 20000 req/s."));
        List<Results.SyscallRow> sys = List.of(Harness.parseStrace("proxy", "non-stream, per request", """
                % time     seconds  usecs/call     calls    errors syscall
                ------ ----------- ----------- --------- --------- ----------------
                 60.00    0.600000          10     60000           writev
                 30.00    0.300000          10     30000     10000 read
                 10.00    0.100000          10     10000           epoll_wait
                ------ ----------- ----------- --------- --------- ----------------
                100.00    1.000000          10    100000     10000 total
                """, 10000));
        return new Results("2030-01-02", "quick", "2030-01-02T03:04:05Z", 150.0,
                new Results.MachineInfo(2, "Test CPU", 24000, "6.1.0", "OpenJDK 17", "epoll", "4.2.18.Final",
                        "1.22.1", "2.6.12", 6.0, 70.0, 0.12, 3.5),
                "load client on CPU 0, peers on CPU 1", "the harness's client",
                List.of(new Results.PeerInfo("direct", "the mock"), new Results.PeerInfo("nginx", "Nginx"),
                        new Results.PeerInfo("proxy", "megallm-proxy")),
                List.of(new Results.Skipped("haproxy", "haproxy is not installed")),
                cfg, ns, wrk, ol, st, ttfb, held, slow, large,
                List.of(new Results.ScenarioLoad("non-stream closed loop", "0.50 0.40 0.30", 0.05, 60)),
                List.of(new Results.RunRecord("non-stream closed loop", "proxy", 1, 64, 2, 19000, 38000, 0, 2.5, 6.0, 0.95,
                        "0.5 0.4 0.3")),
                prof, sys, List.of(new Results.WhatIfRow("proxy as shipped", 64, 30000, 2.0, 4.0, 33.3),
                        new Results.WhatIfRow("proxy, access log off", 64, 60000, 1.0, 2.0, 16.7)),
                new ArrayList<>(List.of("a note")));
    }

    @Test
    void writesTheReportTheJsonAndTheCharts(@TempDir Path dir) throws Exception {
        Results r = fixed(dir);
        List<String> notes = ReportWriter.write(r, dir);

        String md = Files.readString(dir.resolve(ReportWriter.REPORT));
        assertTrue(md.startsWith("# megallm-proxy load report, 2030-01-02 (quick mode)"), md);
        assertTrue(md.contains("java -jar proxy-bench/target/megallm-proxy-bench.jar bench --quick"));
        assertTrue(md.contains("2 cores (Test CPU)"));
        assertTrue(md.contains("writing a new file took 0.12 ns a byte at the start of the run and 3.50 ns at the end"), md);
        assertTrue(md.contains("**haproxy**: SKIPPED: haproxy is not installed"));
        // The non-stream table and its ratios: 20000/16000 = 1.25, 20000/40000 = 0.50, p99 6/8 = 0.75, +4 ms.
        assertTrue(md.contains("| 64 | proxy | 20000 | 2.50 | 6.00 | 12.00 | 18.0 | 0 | 50.0 |"), md);
        assertTrue(md.contains("| 64 | ×1.25 | ×0.50 | ×0.75 | +4.000 |"), md);
        // A level without Nginx or direct rows gets dashes, not errors.
        assertTrue(md.contains("| 16 | — | — | — | — |"), md);
        // Open loop: added p99 over direct, 1.25 - 0.5.
        assertTrue(md.contains("| proxy | 8000 | 8000 | 0.300 | 0.450 | 1.250 | 2.500 | +0.750 | 0 |"), md);
        // Streaming, with the proxy's 10 missing events and 1 error.
        assertTrue(md.contains("| 100 | proxy | 7990/8000 | 0.70 | 1.50 | 1.40 · 1.60 | 0.150 | 0.600 | 1.200 | +0.300 | 1 |"), md);
        assertTrue(md.contains("| proxy | 1000 | 1000 | 1000 | 0 | 90 | 140 | 51.2 | 25.5 | 0.12 |"), md);
        assertTrue(md.contains("| nginx | 1000 | 1000 | 1000 | 0 | 4 | 30 | 26.6 | — | 0.05 |"), md);
        assertTrue(md.contains("| proxy | 8.0 | 81920 | 10.2 | 150.0 | 151.0 | 152.0 | 120 / 7880 |"), md);
        assertTrue(md.contains("| non-stream closed loop | 0.50 0.40 0.30 | 0.05 | 60 |"), md);
        // Targets: throughput above Nginx's and p99 below it are met; the open-loop added p99 is under 1 ms.
        assertTrue(md.contains("| own client, proxy: non-stream throughput ≥ Nginx's, 64 conns | 20000 vs 16000 req/s (×1.25) | yes |"), md);
        assertTrue(md.contains("| open loop: added p99 over direct < 1 ms (cores to spare) | +0.75 ms at 8000 req/s | yes |"), md);
        assertTrue(md.contains("| 1000 open streams: no error, RSS < 512 MB |"), md);
        assertTrue(md.contains("`io.megallm.proxy.server.access.AccessLog.onEnd:40` | 40.0 % |"), md);
        assertTrue(md.contains("Note: a note"));
        // wrk's rows, their targets, h2load's TTFB, and RSS per held stream: (140 - 90) MB / 1000 against (30 - 4) MB / 1000.
        assertTrue(md.contains("| 64 | proxy | 17000 | 2.00 | 7.00 |"), md);
        assertTrue(md.contains("| wrk, proxy: non-stream throughput ≥ Nginx's, 64 conns | 17000 vs 16000 req/s (×1.06) | yes |"), md);
        assertTrue(md.contains("| h2load --h1, 100 streams: mean TTFB ≤ Nginx's | 1.20 vs 1.50 ms | yes |"), md);
        // The streams' TTFB p99 with each trial's own beside it: the proxy 1.40 and 1.60, Nginx 1.20 and 4.40.
        assertTrue(md.contains("| 100 streams: TTFB p99 ≤ Nginx's | 1.50 vs 2.00 ms (one trial's own p99: 1.40–1.60 vs "
                + "1.20–4.40 ms) | yes |"), md);
        assertTrue(md.contains("| 100 | nginx | 8000/8000 | 0.90 | 2.00 | 1.20 · 4.40 | 0.200 | 0.900 |"), md);
        assertTrue(md.contains("| 100 | proxy | 2 | 200 | 0 | 0.40 | 1.20 | 2.50 | 0.30 |"), md);
        assertTrue(md.contains("| 1000 open streams: RSS added per stream ≤ Nginx's | 51.2 vs 26.6 KB | **no** |"), md);
        // The whole process over its streams, as issue 16 counts it: 140 MB / 1000 against 30 MB / 1000.
        assertTrue(md.contains("| 1000 open streams: RSS at the peak ÷ streams ≤ Nginx's | 143.4 vs 30.7 KB | **no** |"), md);
        // strace's table: 100000 calls over 10000 requests, writev first.
        assertTrue(md.contains("| non-stream, per request | proxy | 10000 | 10.00 | writev 6.00, read 3.00, epoll_wait 1.00 |"), md);
        assertTrue(md.contains("| proxy, access log off | 64 | 60000 | 1.00 | 2.00 | 16.7 |"), md);
        // Large answers: p50 · mean, CPU per answer (none for direct), MB/s; proxy ÷ nginx 5/4, 4.8/3.9, 4.9/3.5.
        assertTrue(md.contains("## Large answers (5 × 4 MiB embeddings-shaped JSON, one keep-alive connection)\n\n"
                + "No contract target; watched for regressions."), md);
        assertTrue(md.contains("| direct | 2.05 · 2.10 | — | 1997 |"), md);
        assertTrue(md.contains("| proxy | 4.80 · 5.00 | 4.90 | 839 |"), md);
        assertTrue(md.contains("proxy ÷ nginx: time per answer ×1.25 (mean), ×1.23 (p50); CPU per answer ×1.40."), md);
        assertTrue(md.contains("**proxy**: 1 trial(s) failed"), md);

        // The JSON is well-formed and NaN became null.
        String json = Files.readString(dir.resolve(ReportWriter.JSON));
        int depth = 0;
        int nulls = 0;
        try (JsonParser p = new JsonFactory().createParser(json)) {
            JsonToken t;
            while ((t = p.nextToken()) != null) {
                if (t == JsonToken.START_OBJECT || t == JsonToken.START_ARRAY) {
                    depth++;
                } else if (t == JsonToken.END_OBJECT || t == JsonToken.END_ARRAY) {
                    depth--;
                } else if (t == JsonToken.VALUE_NULL) {
                    nulls++;
                }
            }
        }
        assertEquals(0, depth);
        assertTrue(nulls > 0);
        assertFalse(json.contains("NaN"));
        assertTrue(json.contains("\"throughputRps\": 20000"), json);
        assertTrue(json.contains("\"trialRps\": [\n"), json);
        assertTrue(json.contains("\"peer\": \"proxy\""));
        assertTrue(json.contains("\"largeAnswers\": [\n"), json);
        assertTrue(json.contains("\"cpuMsPerAnswer\": 4.9"), json);

        // Charts: drawn (headless) and linked, or the reason is in the report.
        if (notes.isEmpty()) {
            for (String png : List.of(Charts.THROUGHPUT, Charts.LATENCY, Charts.STREAMS, Charts.THROUGHPUT_WRK)) {
                Path f = dir.resolve(png);
                assertTrue(Files.size(f) > 1000, png);
                byte[] head = Files.readAllBytes(f);
                assertEquals((byte) 0x89, head[0]);
                assertEquals('P', head[1]);
                assertTrue(md.contains("](" + png + ")"), png);
            }
        } else {
            assertTrue(md.contains("charts not drawn"), md);
        }
    }

    @Test
    void sizesAreNamedInWholeUnits() {
        assertEquals("32 MiB", ReportWriter.bytes(32L << 20));
        assertEquals("64 KiB", ReportWriter.bytes(64 << 10));
        assertEquals("1536 bytes", ReportWriter.bytes(1536));
        assertEquals("1000 bytes", ReportWriter.bytes(1000));
    }

    @Test
    void jsonWriterHandlesNumbersAndEscapes() {
        assertEquals("{\n  \"a\": \"x\\\"y\\n\",\n  \"b\": 1.5,\n  \"c\": null,\n  \"d\": [\n    1,\n    2\n  ]\n}\n",
                Json.write(new java.util.LinkedHashMap<>(java.util.Map.of()) {{
                    put("a", "x\"y\n");
                    put("b", 1.5);
                    put("c", Double.NaN);
                    put("d", List.of(1, 2));
                }}));
        assertEquals("0.333333\n", Json.write(1.0 / 3));
        assertEquals("12345678\n", Json.write(12345678.0));
    }
}
