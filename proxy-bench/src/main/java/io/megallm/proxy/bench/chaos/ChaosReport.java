package io.megallm.proxy.bench.chaos;

import io.megallm.proxy.bench.chaos.ChaosResults.Check;
import io.megallm.proxy.bench.chaos.ChaosResults.PatternRow;
import io.megallm.proxy.bench.chaos.ChaosResults.Resources;
import io.megallm.proxy.bench.chaos.ChaosResults.Sample;
import io.megallm.proxy.bench.harness.Charts;
import io.megallm.proxy.bench.harness.Json;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** Writes a chaos run as REPORT.md, results.json and rss-over-time.png. */
public final class ChaosReport {

    public static final String REPORT = "REPORT.md";
    public static final String JSON = "results.json";
    public static final String CHART = "rss-over-time.png";

    private ChaosReport() {
    }

    public static void write(ChaosResults r, Path dir) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve(JSON), Json.write(r), StandardCharsets.UTF_8);
        boolean chart = !r.samples().isEmpty();
        if (chart) {
            chart(r.samples(), dir.resolve(CHART));
        }
        Files.writeString(dir.resolve(REPORT), markdown(r, chart), StandardCharsets.UTF_8);
    }

    static void chart(List<Sample> samples, Path file) {
        double[] t = samples.stream().mapToDouble(Sample::t).toArray();
        Map<String, double[]> mem = new LinkedHashMap<>();
        mem.put("proxy RSS (MB)", samples.stream().mapToDouble(Sample::rssMb).toArray());
        if (samples.stream().anyMatch(s -> !Double.isNaN(s.heapMb()))) {
            mem.put("proxy heap in use (MB, /metrics)", samples.stream().mapToDouble(Sample::heapMb).toArray());
        }
        Map<String, double[]> conns = new LinkedHashMap<>();
        conns.put("proxy fds", samples.stream().mapToDouble(Sample::fds).toArray());
        conns.put("client connections open", samples.stream().mapToDouble(Sample::clientsOpen).toArray());
        conns.put("mock upstream connections open", samples.stream().mapToDouble(Sample::upstreamOpen).toArray());
        conns.put("mock exchanges in progress", samples.stream().mapToDouble(Sample::upstreamInProgress).toArray());
        Charts.lines(List.of(
                new Charts.Line("Chaos run: proxy memory (t < 0: warm-up; after the load: drain)", "seconds since the load began",
                        "MB", t, mem),
                new Charts.Line("Chaos run: descriptors and connections", "seconds since the load began", "count", t,
                        conns)), file);
    }

    static String markdown(ChaosResults r, boolean chart) {
        StringBuilder b = new StringBuilder();
        b.append("# Chaos run, ").append(r.date()).append("\n\n");
        b.append("Verdict: **").append(r.passed() ? "PASS" : "FAIL").append("** (")
                .append(r.checks().stream().filter(c -> Boolean.FALSE.equals(c.passed())).count()).append(" of ")
                .append(r.checks().size()).append(" checks failed). Started ").append(r.startedAt()).append(", load ")
                .append(String.format(Locale.ROOT, "%.0f s", r.loadSeconds())).append(".\n\n");
        b.append("Proxy: `").append(r.proxyCommand()).append("`\n\n");
        b.append("Proxy settings: ");
        r.proxySettings().forEach((k, v) -> b.append('`').append(k).append('=').append(v).append("` "));
        b.append("\n\nRun settings: ");
        r.runSettings().forEach((k, v) -> b.append(k).append(' ').append(v).append("; "));
        b.append("\n\n## Checks\n\n| check | result | rule | measured |\n|---|---|---|---|\n");
        for (Check c : r.checks()) {
            b.append("| ").append(c.name()).append(" | ")
                    .append(c.passed() == null ? "n/a" : c.passed() ? "PASS" : "**FAIL**").append(" | ")
                    .append(cell(c.rule())).append(" | ").append(cell(c.measured())).append(" |\n");
        }
        ChaosResults.Wellbehaved w = r.wellBehaved();
        b.append("\n## Well-behaved requests\n\n");
        b.append(w.sent()).append(" sent, ").append(w.ok()).append(" right, ").append(w.excused())
                .append(" excused, ").append(w.failed()).append(" wrong.\n\n");
        b.append("Rule: a checked request (chat, stream, 1-byte-chunk body, the first request of an idle "
                + "keep-alive) is right when it gets 200 with the whole expected body (byte for byte) or every "
                + "event and `data: [DONE]`. It is excused only when the mock misbehaved on that very request "
                + "(a random fault or a rejection of a dead, banned or limited key, recorded under its `X-Request-Id`, "
                + "which the proxy forwards, or a refusal window while it was in flight) and the answer has a form the contract allows: an error status with the "
                + "OpenAI error body (§7, §9), or after a mid-answer drop a head and a close without a clean end "
                + "(§8). A wrong 200, a close without an answer, or a client timeout (45 s) is never excused.\n\n");
        if (!w.failedByKind().isEmpty()) {
            b.append("Wrong, by kind:\n\n");
            w.failedByKind().forEach((k, v) -> b.append("- ").append(k).append(": ").append(v).append('\n'));
            b.append("\nExamples:\n\n");
            w.failedExamples().forEach(e -> b.append("- `").append(e.replace('`', '\'')).append("`\n"));
            b.append('\n');
        }
        if (!w.excusedByKind().isEmpty()) {
            b.append("Excused, by kind (and what the mock did):\n\n");
            w.excusedByKind().forEach((k, v) -> b.append("- ").append(k).append(": ").append(v).append('\n'));
            b.append('\n');
        }
        b.append("## Client patterns\n\n| pattern | what it does | started | outcomes | cut by proxy (p50 / max s after its timeout began) |\n|---|---|---|---|---|\n");
        for (PatternRow p : r.patterns()) {
            b.append("| ").append(p.pattern()).append(" | ").append(cell(p.description())).append(" | ")
                    .append(p.started()).append(" | ").append(cell(p.outcomes().toString())).append(" | ")
                    .append(p.cutByProxy() == 0 ? "-" : p.cutByProxy() + " (" + ChaosRun.fmt(p.cutP50Seconds())
                            + " / " + ChaosRun.fmt(p.cutMaxSeconds()) + ")").append(" |\n");
        }
        b.append("\n## What the mock upstream answered\n\n");
        r.upstreamAnswers().forEach((k, v) -> b.append("- ").append(k).append(": ").append(v).append('\n'));
        b.append("\n## Resources\n\n| | RSS MB | fds | heap after GC MB | mock connections open | mock exchanges in progress | mock streams |\n|---|---|---|---|---|---|---|\n");
        row(b, "after the warm-up (baseline)", r.baseline());
        row(b, "after the drain", r.after());
        double peakRss = r.samples().stream().mapToDouble(Sample::rssMb).filter(x -> !Double.isNaN(x)).max().orElse(Double.NaN);
        long peakFds = r.samples().stream().mapToLong(Sample::fds).max().orElse(-1);
        int peakClients = r.samples().stream().mapToInt(Sample::clientsOpen).max().orElse(0);
        b.append("\nPeaks over the samples (every 2 s): RSS ").append(ChaosRun.fmt(peakRss)).append(" MB, ")
                .append(peakFds).append(" fds, ").append(peakClients).append(" client connections open.\n\n");
        b.append("Proxy gauges after the drain: ").append(r.after().gauges()).append("\n\n");
        if (chart) {
            b.append("![RSS and descriptors over time](").append(CHART).append(")\n\n");
        }
        if (!r.notes().isEmpty()) {
            b.append("## Notes\n\n");
            r.notes().forEach(n -> b.append("- ").append(n).append('\n'));
        }
        return b.toString();
    }

    private static void row(StringBuilder b, String name, Resources x) {
        b.append("| ").append(name).append(" | ").append(ChaosRun.fmt(x.rssMb())).append(" | ").append(x.fds())
                .append(" | ").append(ChaosRun.fmt(x.heapAfterGcMb())).append(" | ").append(x.upstreamOpen())
                .append(" | ").append(x.upstreamInProgress()).append(" | ").append(x.upstreamStreams()).append(" |\n");
    }

    private static String cell(String s) {
        return s.replace("|", "\\|").replace("\n", " ");
    }
}
