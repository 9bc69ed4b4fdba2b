package io.megallm.proxy.bench.harness;

import io.megallm.proxy.bench.harness.Results.Entry;
import io.megallm.proxy.bench.harness.Results.ProfileSummary;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordedFrame;
import jdk.jfr.consumer.RecordedMethod;
import jdk.jfr.consumer.RecordedStackTrace;
import jdk.jfr.consumer.RecordingFile;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** Starts and stops a JFR recording in another JVM (jcmd) and summarises it (jdk.jfr.consumer). */
public final class JfrProfile {

    private static final int TOP = 12;

    private JfrProfile() {
    }

    public static Tools.Result start(long pid, String name, Path file) {
        return Tools.run(List.of(Tools.jdkTool("jcmd"), Long.toString(pid), "JFR.start", "name=" + name,
                "settings=profile", "filename=" + file.toAbsolutePath()), 30);
    }

    public static Tools.Result stop(long pid, String name) {
        return Tools.run(List.of(Tools.jdkTool("jcmd"), Long.toString(pid), "JFR.stop", "name=" + name), 60);
    }

    /** Event-loop threads of the proxy: where requests are served. */
    static boolean eventLoop(String thread) {
        return thread != null && thread.startsWith("megallm-io");
    }

    static String threadName(RecordedEvent e, String field) {
        var t = e.getThread(field);
        if (t == null) {
            return "?";
        }
        String n = t.getJavaName() != null ? t.getJavaName() : t.getOSName();
        // Group numbered threads: megallm-io-3-1 and megallm-io-3-2 are both "megallm-io-*".
        return n == null ? "?" : n.replaceAll("-\\d+(-\\d+)*$", "-*");
    }

    public static ProfileSummary summarize(Path file, String load, double seconds, String note) throws IOException {
        return summarize(file, load, seconds, note, null, null);
    }

    /** Only events that started within [{@code from}, {@code to}) count (null: no bound). */
    public static ProfileSummary summarize(Path file, String load, double seconds, String note,
                                           java.time.Instant from, java.time.Instant to) throws IOException {
        long samples = 0;
        long loopSamples = 0;
        long loopNative = 0;
        Map<String, Long> threads = new HashMap<>();
        Map<String, Long> hot = new HashMap<>();
        Map<String, Long> proxyHot = new HashMap<>();
        Map<String, Long> natives = new HashMap<>();
        Map<String, Long> sites = new HashMap<>();
        Map<String, Long> proxySites = new HashMap<>();
        Map<String, Long> classes = new HashMap<>();
        Map<String, Long> allocThreads = new HashMap<>();
        Set<Long> sampledThreads = new HashSet<>();
        long allocated = 0;
        long gcCount = 0;
        long gcPauseNanos = 0;
        long monitor = 0;
        try (RecordingFile rf = new RecordingFile(file)) {
            while (rf.hasMoreEvents()) {
                RecordedEvent e = rf.readEvent();
                if ((from != null && e.getStartTime().isBefore(from)) || (to != null && !e.getStartTime().isBefore(to))) {
                    continue;
                }
                switch (e.getEventType().getName()) {
                    case "jdk.ExecutionSample" -> {
                        RecordedStackTrace st = e.getStackTrace();
                        if (st == null || st.getFrames().isEmpty()) {
                            continue;
                        }
                        samples++;
                        String thread = threadName(e, "sampledThread");
                        threads.merge(thread, 1L, Long::sum);
                        if (!eventLoop(thread)) {
                            continue;
                        }
                        loopSamples++;
                        List<RecordedFrame> frames = st.getFrames();
                        hot.merge(method(frames.get(0)), 1L, Long::sum);
                        Set<String> seen = new HashSet<>();
                        for (RecordedFrame f : frames) {
                            String m = method(f);
                            if (m.startsWith("io.megallm.") && seen.add(m)) {
                                proxyHot.merge(m, 1L, Long::sum);
                            }
                        }
                    }
                    case "jdk.NativeMethodSample" -> {
                        RecordedStackTrace st = e.getStackTrace();
                        if (st == null || st.getFrames().isEmpty() || !eventLoop(threadName(e, "sampledThread"))) {
                            continue;
                        }
                        loopNative++;
                        natives.merge(method(st.getFrames().get(0)), 1L, Long::sum);
                    }
                    case "jdk.ObjectAllocationSample" -> {
                        var t = e.getThread("eventThread");
                        long tid = t == null ? -1 : t.getJavaThreadId();
                        // A thread's first sample weighs everything it allocated before the recording.
                        if (sampledThreads.add(tid)) {
                            continue;
                        }
                        long w = e.getLong("weight");
                        allocated += w;
                        allocThreads.merge(threadName(e, "eventThread"), w, Long::sum);
                        var cls = e.getClass("objectClass");
                        classes.merge(cls == null ? "?" : cls.getName(), w, Long::sum);
                        RecordedStackTrace st = e.getStackTrace();
                        if (st == null || st.getFrames().isEmpty()) {
                            continue;
                        }
                        List<RecordedFrame> frames = st.getFrames();
                        sites.merge(methodLine(frames.get(0)), w, Long::sum);
                        String proxyFrame = "(no io.megallm frame: Netty, logback or JDK threads)";
                        for (RecordedFrame f : frames) {
                            if (method(f).startsWith("io.megallm.")) {
                                proxyFrame = methodLine(f);
                                break;
                            }
                        }
                        proxySites.merge(proxyFrame, w, Long::sum);
                    }
                    case "jdk.GarbageCollection" -> {
                        gcCount++;
                        gcPauseNanos += e.getDuration("sumOfPauses").toNanos();
                    }
                    case "jdk.JavaMonitorEnter" -> monitor++;
                    default -> {
                    }
                }
            }
        }
        String text = (note == null ? "" : note + " ") + String.format(java.util.Locale.ROOT,
                "Event-loop threads: %d samples in Java code, %d in native code (JFR samples Java code every 10 ms "
                        + "and native code every 20 ms per thread; native time is mostly syscalls and epoll_wait).",
                loopSamples, loopNative);
        return new ProfileSummary(load, file.getFileName().toString(), seconds, samples, top(threads, samples),
                top(hot, loopSamples), top(proxyHot, loopSamples), top(natives, loopNative), top(sites, allocated),
                top(proxySites, allocated), top(classes, allocated), top(allocThreads, allocated),
                seconds > 0 ? allocated / 1e6 / seconds : Double.NaN, gcCount, gcPauseNanos / 1e6, monitor, text);
    }

    static String method(RecordedFrame f) {
        RecordedMethod m = f.getMethod();
        if (m == null) {
            return "?";
        }
        return m.getType().getName() + "." + m.getName();
    }

    static String methodLine(RecordedFrame f) {
        int line = f.getLineNumber();
        return method(f) + (line > 0 ? ":" + line : "");
    }

    static List<Entry> top(Map<String, Long> counts, long total) {
        List<Map.Entry<String, Long>> list = new ArrayList<>(counts.entrySet());
        list.sort(Map.Entry.<String, Long>comparingByValue(Comparator.reverseOrder()));
        List<Entry> out = new ArrayList<>();
        for (int i = 0; i < Math.min(TOP, list.size()); i++) {
            Map.Entry<String, Long> e = list.get(i);
            out.add(new Entry(e.getKey(), total > 0 ? 100.0 * e.getValue() / total : 0, e.getValue()));
        }
        return out;
    }
}
