package io.megallm.proxy.bench.harness;

import java.util.List;

/** Everything one harness run measured; written as REPORT.md, results.json and charts. */
public record Results(
        String date,
        String mode,
        String startedAt,
        double durationSeconds,
        MachineInfo machine,
        String placement,
        String client,
        List<PeerInfo> peers,
        List<Skipped> skipped,
        BenchConfig config,
        List<NonStreamRow> nonStream,
        List<NonStreamRow> wrk,
        List<OpenLoopRow> openLoop,
        List<StreamRow> streaming,
        List<TtfbRow> h2load,
        List<HeldRow> held,
        List<SlowReaderRow> slowReader,
        List<LargeAnswerRow> largeAnswers,
        List<ScenarioLoad> load,
        List<RunRecord> runs,
        List<ProfileSummary> profiles,
        List<SyscallRow> syscalls,
        List<WhatIfRow> whatIf,
        List<String> notes) {

    /**
     * The machine. {@code hopSameCoreUs}/{@code hopCrossCoreUs}: round trip through a plain blocking
     * relay thread on the client's core / on the peers' core ({@link WakeupProbe}).
     */
    public record MachineInfo(int cores, String cpu, long memoryMb, String kernel, String jdk, String nettyTransport,
                              String nettyVersion, String nginx, String haproxy, double hopSameCoreUs,
                              double hopCrossCoreUs, double newFileNsPerByteStart, double newFileNsPerByteEnd) {
    }

    public record PeerInfo(String name, String description) {
    }

    public record Skipped(String peer, String reason) {
    }

    /** Closed loop, one peer at one connection count, all trials together. */
    public record NonStreamRow(String peer, int connections, int trials, double throughputRps, List<Double> trialRps,
                               LatencySummary latency, long ok, long errors, double peerCpuUsPerRequest) {
    }

    /** Open loop at a fixed rate, one peer. */
    public record OpenLoopRow(String peer, int connections, double targetRps, double achievedRps,
                              LatencySummary latency, long ok, long errors) {
    }

    /**
     * Concurrent SSE streams read to their end, one peer at one stream count. {@code ttfbP99ByTrialMs}
     * is each trial's own TTFB p99: with a burst of 100 first bytes a trial, the pooled p99 is the
     * fourth-worst of 300, and the spread across trials shows how much a few outliers move it.
     */
    public record StreamRow(String peer, int streams, int eventsPerStream, long intervalMs, int trials,
                            long eventsExpected, long eventsReceived, long completed, LatencySummary ttfb,
                            List<Double> ttfbP99ByTrialMs, LatencySummary perEvent, long errors) {
    }

    /**
     * Time to first byte of {@code streams} SSE streams opened at once by h2load --h1 (one request a
     * connection), over all trials: the lowest min, the mean of the means, the highest max.
     */
    public record TtfbRow(String peer, int streams, int trials, long succeeded, long failed, double minMs,
                          double meanMs, double maxMs, double sdMs) {
    }

    /** Concurrent open streams held for a while, then dropped by the clients. */
    public record HeldRow(String peer, int streams, long established, long receiving, long errors,
                          double rssBeforeMb, double rssPeakMb, double heapAfterGcMb, double upstreamClosedSeconds,
                          double holdSeconds) {
    }

    /** One client reading a fast stream at 10 KB/s. */
    public record SlowReaderRow(String peer, double seconds, long bytesRead, double readKBps, double rssStartMb,
                                double rssEndMb, double rssMaxMb, long mockEventsSent, long mockEventsSkipped,
                                List<Double> rssSamplesMb) {
    }

    /**
     * Large non-streaming answers (embeddings-shaped JSON of {@code sizeBytes}), one peer:
     * {@code answersPerTrial} answers one after the other on one keep-alive connection per trial.
     * Times are request sent → last byte, pooled over the trials that completed ({@code trialMeanMs}:
     * each one's mean); CPU is the peer's per answer over those trials (NaN for direct); MB/s is
     * the size (10^6 bytes) over the mean time. A trial with an error counts in {@code errors} only.
     */
    public record LargeAnswerRow(String peer, long sizeBytes, int answersPerTrial, int trials, long answers,
                                 long errors, List<Double> trialMeanMs, double meanMs, double p50Ms, double maxMs,
                                 double cpuMsPerAnswer, double mbPerSecond) {
    }

    /** How busy the machine was around a scenario. */
    public record ScenarioLoad(String scenario, String loadavgBefore, double otherCpuCores, double seconds) {
    }

    /** One measured run (raw). */
    public record RunRecord(String scenario, String peer, int trial, int connections, double seconds,
                            double throughputRps, long ok, long errors, double p50Ms, double p99Ms,
                            double peerCpuCores, String loadavgBefore) {
    }

    /** A JFR recording of our proxy, summarised. */
    public record ProfileSummary(String load, String file, double seconds, long executionSamples,
                                 List<Entry> threads, List<Entry> hotMethods, List<Entry> hotProxyMethods,
                                 List<Entry> nativeMethods, List<Entry> allocationSites,
                                 List<Entry> allocationByProxyFrame, List<Entry> allocatedClasses,
                                 List<Entry> allocationByThread, double allocatedMbPerSecond, long gcCount,
                                 double gcPauseMs, long monitorBlocks, String note) {
    }

    /** System calls per answered request of one peer ({@code strace -c -f}), the most frequent first. */
    public record SyscallRow(String peer, String load, long requests, double perRequest, List<SyscallEntry> top,
                             String note) {
    }

    public record SyscallEntry(String name, double perRequest) {
    }

    /** A variant of our proxy measured next to it as shipped, to attribute cost (closed loop). */
    public record WhatIfRow(String variant, int connections, double throughputRps, double p50Ms, double p99Ms,
                            double cpuUsPerRequest) {
    }

    /** A name with its share (percent) and raw value (samples or bytes). */
    public record Entry(String name, double percent, long value) {
    }
}
