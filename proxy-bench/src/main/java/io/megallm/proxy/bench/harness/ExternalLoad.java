package io.megallm.proxy.bench.harness;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Load generators that are not ours, so that a flaw of the harness's own client cannot flatter
 * or hurt any peer: Debian's {@code wrk} for closed-loop non-streaming requests (a Lua script
 * sends the same chat completion POST as the harness's client) and {@code h2load --h1}
 * (nghttp2-client) for the time to first byte of SSE streams. Both run pinned to the client's
 * core, as the harness's own client does.
 */
public final class ExternalLoad {

    /** One wrk run: throughput over the run, latency percentiles over every request (wrk's own histogram). */
    public record WrkOutcome(double throughputRps, long requests, long errors, LatencySummary latency, String raw) {
    }

    /** One h2load run of {@code streams} streams, one request per connection: wrk-style per-connection TTFB statistics. */
    public record TtfbOutcome(long succeeded, long failed, double minMs, double meanMs, double maxMs, double sdMs,
                              String raw) {
    }

    private ExternalLoad() {
    }

    // ---- wrk --------------------------------------------------------------------------------

    /**
     * The request of {@link Requests#nonStream}, and a {@code done} hook that prints what the
     * report needs in one line: exact percentiles (wrk's {@code --latency} prints rounded ones).
     */
    static String wrkScript() {
        String body = Requests.CHAT_BODY.replace("\\", "\\\\").replace("'", "\\'");
        return "wrk.method = \"POST\"\n"
                + "wrk.body = '" + body + "'\n"
                + "wrk.headers[\"User-Agent\"] = \"megallm-bench/1.0\"\n"
                + "wrk.headers[\"Accept\"] = \"application/json\"\n"
                + "wrk.headers[\"Content-Type\"] = \"application/json\"\n"
                + "wrk.headers[\"Authorization\"] = \"Bearer sk-bench-client-key\"\n"
                + "wrk.headers[\"X-Stainless-Lang\"] = \"java\"\n"
                + "wrk.headers[\"X-Stainless-Retry-Count\"] = \"0\"\n"
                + "done = function(summary, latency, requests)\n"
                + "  local e = summary.errors\n"
                + "  io.write(string.format(\"megallm-wrk requests=%d duration_us=%d errors=%d status=%d "
                + "mean=%f p50=%d p90=%d p99=%d p999=%d max=%d\\n\",\n"
                + "    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,\n"
                + "    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),\n"
                + "    latency:percentile(99.9), latency.max))\n"
                + "end\n";
    }

    public static Path writeWrkScript(Path dir) throws IOException {
        Files.createDirectories(dir);
        Path f = dir.resolve("chat-completion.lua");
        Files.writeString(f, wrkScript(), StandardCharsets.UTF_8);
        return f;
    }

    /** {@code wrk -t1 -c<connections> -d<seconds>s} against {@code port}, pinned to the client's CPUs. */
    public static WrkOutcome wrk(Pinning pin, Path script, int port, int connections, double seconds) {
        long secs = Math.max(1, Math.round(seconds));
        List<String> cmd = pin.wrap(List.of("wrk", "-t1", "-c" + connections, "-d" + secs + "s", "--timeout", "10s",
                "-s", script.toString(), "http://127.0.0.1:" + port + "/v1/chat/completions"), pin.clientCpus());
        Tools.Result r = Tools.run(cmd, secs + 30);
        return parseWrk(r.output());
    }

    private static final Pattern WRK_LINE = Pattern.compile("megallm-wrk requests=(\\d+) duration_us=(\\d+) "
            + "errors=(\\d+) status=(\\d+) mean=([\\d.]+) p50=(\\d+) p90=(\\d+) p99=(\\d+) p999=(\\d+) max=(\\d+)");

    /** Reads the line of {@link #wrkScript()}'s {@code done}; latencies are microseconds there. */
    static WrkOutcome parseWrk(String output) {
        Matcher m = WRK_LINE.matcher(output);
        if (!m.find()) {
            return new WrkOutcome(Double.NaN, 0, -1, LatencySummary.EMPTY, output);
        }
        long requests = Long.parseLong(m.group(1));
        double seconds = Long.parseLong(m.group(2)) / 1e6;
        long errors = Long.parseLong(m.group(3)) + Long.parseLong(m.group(4));
        LatencySummary l = new LatencySummary(requests, Double.parseDouble(m.group(5)) / 1000,
                us(m.group(6)), us(m.group(7)), us(m.group(8)), us(m.group(9)), us(m.group(10)));
        return new WrkOutcome(seconds > 0 ? requests / seconds : Double.NaN, requests, errors, l, output);
    }

    private static double us(String v) {
        return Long.parseLong(v) / 1000.0;
    }

    // ---- h2load ----------------------------------------------------------------------------

    /**
     * {@code h2load --h1} opening {@code streams} connections at once, one SSE chat completion
     * each ({@code events} events {@code intervalMs} apart), pinned to the client's CPUs.
     */
    public static TtfbOutcome h2load(Pinning pin, Path dir, int port, int streams, int events, long intervalMs)
            throws IOException {
        Files.createDirectories(dir);
        Path body = dir.resolve("stream-body.json");
        Files.writeString(body, Requests.STREAM_BODY, StandardCharsets.UTF_8);
        List<String> cmd = new ArrayList<>(List.of("h2load", "--h1", "-c", Integer.toString(streams), "-n",
                Integer.toString(streams), "-m", "1", "-t", "1", "-d", body.toString(),
                "-H", "Content-Type: application/json", "-H", "Accept: text/event-stream",
                "-H", "Authorization: Bearer sk-bench-client-key",
                "-H", "X-Mock-Events: " + events, "-H", "X-Mock-Interval-Ms: " + intervalMs,
                "http://127.0.0.1:" + port + "/v1/chat/completions"));
        long expect = (long) events * intervalMs / 1000;
        Tools.Result r = Tools.run(pin.wrap(cmd, pin.clientCpus()), expect + 60);
        return parseH2load(r.output());
    }

    private static final Pattern H2_REQUESTS = Pattern.compile(
            "requests: \\d+ total, \\d+ started, \\d+ done, (\\d+) succeeded, (\\d+) failed");
    private static final Pattern H2_TTFB = Pattern.compile(
            "time to 1st byte:\\s+(\\S+)\\s+(\\S+)\\s+(\\S+)\\s+(\\S+)");

    /** Reads h2load's summary: "requests: …" and the "time to 1st byte: min max mean sd" row. */
    static TtfbOutcome parseH2load(String output) {
        Matcher req = H2_REQUESTS.matcher(output);
        Matcher t = H2_TTFB.matcher(output);
        if (!req.find() || !t.find()) {
            return new TtfbOutcome(0, -1, Double.NaN, Double.NaN, Double.NaN, Double.NaN, output);
        }
        return new TtfbOutcome(Long.parseLong(req.group(1)), Long.parseLong(req.group(2)), ms(t.group(1)),
                ms(t.group(3)), ms(t.group(2)), ms(t.group(4)), output);
    }

    /** h2load's durations: "812us", "1.52ms", "2.01s". */
    static double ms(String v) {
        String s = v.trim().toLowerCase(Locale.ROOT);
        if (s.endsWith("us")) {
            return Double.parseDouble(s.substring(0, s.length() - 2)) / 1000;
        }
        if (s.endsWith("ms")) {
            return Double.parseDouble(s.substring(0, s.length() - 2));
        }
        if (s.endsWith("s")) {
            return Double.parseDouble(s.substring(0, s.length() - 1)) * 1000;
        }
        return Double.NaN;
    }
}
