package io.megallm.proxy.bench.chaos;

import java.util.List;
import java.util.Map;

/** Everything one chaos run saw; written as REPORT.md and results.json. */
public record ChaosResults(
        String date,
        String startedAt,
        double loadSeconds,
        String proxyCommand,
        Map<String, String> proxySettings,
        Map<String, Object> runSettings,
        List<PatternRow> patterns,
        Wellbehaved wellBehaved,
        Map<String, Long> upstreamAnswers,
        Resources baseline,
        Resources after,
        List<Sample> samples,
        List<Check> checks,
        List<String> notes) {

    /** Per client pattern: sessions started and how they ended. */
    public record PatternRow(String pattern, String description, long started, Map<String, Long> outcomes,
                             long cutByProxy, double cutP50Seconds, double cutMaxSeconds) {
    }

    /**
     * The checked requests. {@code excused}: a wrong answer in a form the contract allows where the
     * mock misbehaved on that request (or refused connections while it was in flight).
     */
    public record Wellbehaved(long sent, long ok, long excused, long failed, Map<String, Long> excusedByKind,
                              Map<String, Long> failedByKind, List<String> failedExamples) {
    }

    /** Proxy and mock resources at one moment. */
    public record Resources(double rssMb, long fds, double heapAfterGcMb, int upstreamOpen,
                            int upstreamInProgress, int upstreamStreams, Map<String, Double> gauges) {
    }

    /** One sample, {@code t} seconds after the load began (negative: warm-up; after the load: drain). */
    public record Sample(double t, double rssMb, long fds, double heapMb, int clientsOpen, int upstreamOpen,
                         int upstreamInProgress, double proxyConnections, double proxyUpstreamConnections) {
    }

    /** One pass/fail criterion; {@code passed == null}: not measurable against this proxy. */
    public record Check(String name, Boolean passed, String rule, String measured) {
    }

    public boolean passed() {
        return checks.stream().noneMatch(c -> Boolean.FALSE.equals(c.passed()));
    }
}
