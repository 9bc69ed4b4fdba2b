package io.megallm.proxy.bench.harness;

import java.nio.file.Path;
import java.util.List;

/**
 * What one harness run does. {@link #quick()} fits in under 3 minutes on 2 cores, {@link #full()}
 * is the thorough run, {@link #smoke(Path)} is the few-second run of the test suite.
 *
 * @param mode                 quick, full or smoke
 * @param connectionLevels     closed-loop connection counts
 * @param trials               closed-loop trials per level and peer (peers interleaved, order rotated)
 * @param warmupSeconds        per closed-loop run, not measured
 * @param measureSeconds       per closed-loop run, measured
 * @param peerWarmupSeconds    per peer before anything is measured (JIT, connection pools)
 * @param openLoopConnections  connections of the open-loop client
 * @param openLoopSeconds      per open-loop run, measured (after 1 s not measured)
 * @param streamCounts         concurrent SSE stream counts
 * @param streamEvents         events per stream
 * @param streamIntervalMs     ms between events
 * @param streamTrials         trials per stream count and peer
 * @param heldStreams          concurrent open streams held
 * @param holdSeconds          how long they are held
 * @param heldOpenPerSecond    how fast they are opened
 * @param slowReaderSeconds    how long the 10 KB/s reader reads
 * @param slowReaderPeers      peers the slow reader runs against
 * @param largeAnswerBytes     size of each answer of the large-answer scenario (embeddings-shaped JSON)
 * @param largeAnswers         answers per trial of the large-answer scenario, one keep-alive connection
 * @param profile              record a JFR profile of our proxy after the measured scenarios
 * @param profileSeconds       length of each profiled load
 * @param peers                peers to run (direct, nginx, haproxy, proxy)
 * @param outDir               where REPORT.md, results.json and the charts go
 * @param proxyJar             megallm-proxy.jar; null runs the proxy inside the harness JVM
 * @param proxyJvmOptions      JVM options of the proxy process
 * @param inProcessMock        run the mock inside the harness JVM (smoke test)
 * @param pin                  pin processes to cores with taskset
 * @param keepWork             keep the temporary work directory (peer logs, configurations, strace output)
 * @param scenarios            which scenarios run ({@link #ALL_SCENARIOS}; a long run can be split into parts)
 */
public record BenchConfig(
        String mode,
        List<Integer> connectionLevels,
        int trials,
        double warmupSeconds,
        double measureSeconds,
        double peerWarmupSeconds,
        int openLoopConnections,
        double openLoopSeconds,
        List<Integer> streamCounts,
        int streamEvents,
        long streamIntervalMs,
        int streamTrials,
        int heldStreams,
        double holdSeconds,
        int heldOpenPerSecond,
        double slowReaderSeconds,
        List<String> slowReaderPeers,
        long largeAnswerBytes,
        int largeAnswers,
        boolean profile,
        double profileSeconds,
        List<String> peers,
        Path outDir,
        Path proxyJar,
        List<String> proxyJvmOptions,
        boolean inProcessMock,
        boolean pin,
        boolean keepWork,
        List<String> scenarios) {

    public static final List<String> ALL_PEERS = List.of(Peers.DIRECT, Peers.HAPROXY, Peers.NGINX, Peers.PROXY,
            Peers.PROXY_IMAGE);

    /**
     * closed: the harness's client, closed loop; wrk: the same with wrk; open: open loop; streams:
     * SSE streams (own client); ttfb: h2load's time to first byte; held: open streams held; slow:
     * the slow reader; large: large non-streaming answers (embeddings-shaped); profile: JFR, strace
     * and the access-log what-if.
     */
    public static final List<String> ALL_SCENARIOS = List.of("closed", "wrk", "open", "streams", "ttfb", "held",
            "slow", "large", "profile");

    private static final long MIB = 1024 * 1024;

    public boolean runs(String scenario) {
        return scenarios.contains(scenario);
    }

    public static BenchConfig quick() {
        return new BenchConfig("quick", List.of(16, 64, 256), 2, 0.5, 1.5, 20.0,
                64, 2.0,
                List.of(100), 40, 25, 2,
                1000, 2.5, 4000,
                4.0, List.of(Peers.PROXY, Peers.NGINX),
                4 * MIB, 5,
                true, 3.0,
                ALL_PEERS, null, null, List.of(), false, true, false, ALL_SCENARIOS);
    }

    public static BenchConfig full() {
        return new BenchConfig("full", List.of(16, 64, 256), 5, 1.0, 5.0, 120.0,
                64, 10.0,
                List.of(100, 1000), 100, 50, 3,
                10000, 15.0, 2500,
                30.0, List.of(Peers.PROXY, Peers.NGINX, Peers.HAPROXY),
                32 * MIB, 10,
                true, 15.0,
                ALL_PEERS, null, null, List.of(), false, true, false, ALL_SCENARIOS);
    }

    /** A few seconds end to end: mock and proxy in this JVM, plus direct (and Nginx/HAProxy if installed). */
    public static BenchConfig smoke(Path outDir) {
        return new BenchConfig("smoke", List.of(4), 1, 0.2, 0.5, 0.3,
                4, 0.5,
                List.of(5), 5, 10, 1,
                20, 0.5, 2000,
                1.0, List.of(Peers.PROXY),
                64 * 1024, 3,
                false, 0,
                ALL_PEERS, outDir, null, List.of(), true, false, false, ALL_SCENARIOS);
    }

    public BenchConfig withOutDir(Path dir) {
        return new BenchConfig(mode, connectionLevels, trials, warmupSeconds, measureSeconds, peerWarmupSeconds,
                openLoopConnections, openLoopSeconds, streamCounts, streamEvents, streamIntervalMs, streamTrials,
                heldStreams, holdSeconds, heldOpenPerSecond, slowReaderSeconds, slowReaderPeers, largeAnswerBytes,
                largeAnswers, profile, profileSeconds, peers, dir, proxyJar, proxyJvmOptions, inProcessMock, pin,
                keepWork, scenarios);
    }

    public BenchConfig withProxyJar(Path jar) {
        return new BenchConfig(mode, connectionLevels, trials, warmupSeconds, measureSeconds, peerWarmupSeconds,
                openLoopConnections, openLoopSeconds, streamCounts, streamEvents, streamIntervalMs, streamTrials,
                heldStreams, holdSeconds, heldOpenPerSecond, slowReaderSeconds, slowReaderPeers, largeAnswerBytes,
                largeAnswers, profile, profileSeconds, peers, outDir, jar, proxyJvmOptions, inProcessMock, pin,
                keepWork, scenarios);
    }

    public BenchConfig withPeers(List<String> list) {
        return new BenchConfig(mode, connectionLevels, trials, warmupSeconds, measureSeconds, peerWarmupSeconds,
                openLoopConnections, openLoopSeconds, streamCounts, streamEvents, streamIntervalMs, streamTrials,
                heldStreams, holdSeconds, heldOpenPerSecond, slowReaderSeconds, slowReaderPeers, largeAnswerBytes,
                largeAnswers, profile, profileSeconds, list, outDir, proxyJar, proxyJvmOptions, inProcessMock, pin,
                keepWork, scenarios);
    }

    public BenchConfig withProfile(boolean on) {
        return new BenchConfig(mode, connectionLevels, trials, warmupSeconds, measureSeconds, peerWarmupSeconds,
                openLoopConnections, openLoopSeconds, streamCounts, streamEvents, streamIntervalMs, streamTrials,
                heldStreams, holdSeconds, heldOpenPerSecond, slowReaderSeconds, slowReaderPeers, largeAnswerBytes,
                largeAnswers, on, profileSeconds, peers, outDir, proxyJar, proxyJvmOptions, inProcessMock, pin,
                keepWork, scenarios);
    }

    public BenchConfig withPin(boolean on) {
        return new BenchConfig(mode, connectionLevels, trials, warmupSeconds, measureSeconds, peerWarmupSeconds,
                openLoopConnections, openLoopSeconds, streamCounts, streamEvents, streamIntervalMs, streamTrials,
                heldStreams, holdSeconds, heldOpenPerSecond, slowReaderSeconds, slowReaderPeers, largeAnswerBytes,
                largeAnswers, profile, profileSeconds, peers, outDir, proxyJar, proxyJvmOptions, inProcessMock, on,
                keepWork, scenarios);
    }

    public BenchConfig withKeepWork(boolean keep) {
        return new BenchConfig(mode, connectionLevels, trials, warmupSeconds, measureSeconds, peerWarmupSeconds,
                openLoopConnections, openLoopSeconds, streamCounts, streamEvents, streamIntervalMs, streamTrials,
                heldStreams, holdSeconds, heldOpenPerSecond, slowReaderSeconds, slowReaderPeers, largeAnswerBytes,
                largeAnswers, profile, profileSeconds, peers, outDir, proxyJar, proxyJvmOptions, inProcessMock, pin,
                keep, scenarios);
    }

    public BenchConfig withProxyJvmOptions(List<String> options) {
        return new BenchConfig(mode, connectionLevels, trials, warmupSeconds, measureSeconds, peerWarmupSeconds,
                openLoopConnections, openLoopSeconds, streamCounts, streamEvents, streamIntervalMs, streamTrials,
                heldStreams, holdSeconds, heldOpenPerSecond, slowReaderSeconds, slowReaderPeers, largeAnswerBytes,
                largeAnswers, profile, profileSeconds, peers, outDir, proxyJar, options, inProcessMock, pin, keepWork,
                scenarios);
    }

    public BenchConfig withScenarios(List<String> list) {
        return new BenchConfig(mode, connectionLevels, trials, warmupSeconds, measureSeconds, peerWarmupSeconds,
                openLoopConnections, openLoopSeconds, streamCounts, streamEvents, streamIntervalMs, streamTrials,
                heldStreams, holdSeconds, heldOpenPerSecond, slowReaderSeconds, slowReaderPeers, largeAnswerBytes,
                largeAnswers, profile, profileSeconds, peers, outDir, proxyJar, proxyJvmOptions, inProcessMock, pin,
                keepWork, list);
    }

    public BenchConfig withTrials(int closedTrials, int streamTrialCount) {
        return new BenchConfig(mode, connectionLevels, closedTrials, warmupSeconds, measureSeconds, peerWarmupSeconds,
                openLoopConnections, openLoopSeconds, streamCounts, streamEvents, streamIntervalMs, streamTrialCount,
                heldStreams, holdSeconds, heldOpenPerSecond, slowReaderSeconds, slowReaderPeers, largeAnswerBytes,
                largeAnswers, profile, profileSeconds, peers, outDir, proxyJar, proxyJvmOptions, inProcessMock, pin,
                keepWork, scenarios);
    }
}
