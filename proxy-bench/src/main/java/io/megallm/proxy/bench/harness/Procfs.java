package io.megallm.proxy.bench.harness;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/** What Linux says about processes and the machine (/proc); -1 or "" where it cannot be read. */
public final class Procfs {

    /** Clock ticks per second of /proc/<pid>/stat and /proc/stat (USER_HZ, 100 on Linux). */
    public static final long TICKS_PER_SECOND = 100;

    private Procfs() {
    }

    /** VmRSS of one process in KiB. */
    public static long rssKb(long pid) {
        if (pid <= 0) {
            return -1;
        }
        try {
            for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
                if (line.startsWith("VmRSS:")) {
                    return Long.parseLong(line.substring(6).replace("kB", "").trim());
                }
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }

    /** VmRSS of a process and all its descendants (Nginx: master and workers), in KiB. */
    public static long rssKbTree(long pid) {
        long own = rssKb(pid);
        if (own < 0) {
            return -1;
        }
        long sum = own;
        for (long child : descendants(pid)) {
            long r = rssKb(child);
            if (r > 0) {
                sum += r;
            }
        }
        return sum;
    }

    /** utime + stime of a process (all its threads), in ticks. */
    public static long cpuTicks(long pid) {
        if (pid <= 0) {
            return 0;
        }
        try {
            return ticks(Files.readString(Path.of("/proc/" + pid + "/stat")));
        } catch (IOException | RuntimeException e) {
            return 0;
        }
    }

    /** utime + stime from a {@code /proc/.../stat} line, of a process or of one of its threads. */
    private static long ticks(String stat) {
        String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
        // Fields after the command: state(3) ... utime(14) stime(15), so index 11 and 12 here.
        return Long.parseLong(f[11]) + Long.parseLong(f[12]);
    }

    /**
     * utime + stime of a JVM's JIT compiler threads ({@code C1 CompilerThre}, {@code C2
     * CompilerThre} in {@code /proc/<pid>/task/<tid>/comm}), in ticks; 0 when they cannot be read.
     */
    public static long compilerTicks(long pid) {
        if (pid <= 0) {
            return 0;
        }
        long sum = 0;
        try (var tasks = Files.list(Path.of("/proc/" + pid + "/task"))) {
            for (Path t : (Iterable<Path>) tasks::iterator) {
                try {
                    if (!Files.readString(t.resolve("comm")).contains("CompilerThre")) {
                        continue;
                    }
                    sum += ticks(Files.readString(t.resolve("stat")));
                } catch (IOException | RuntimeException e) {
                    // A thread that ended between the listing and the read.
                }
            }
        } catch (IOException | RuntimeException e) {
            return 0;
        }
        return sum;
    }

    /**
     * Time on a CPU of every thread of a process and of its descendants, in nanoseconds, by
     * thread id: the first field of {@code /proc/<pid>/task/<tid>/schedstat} (the scheduler's
     * {@code sum_exec_runtime}, current as of the thread's last switch). Empty when it cannot be
     * read. {@link #cpuTicks} counts whole 10-ms ticks, too coarse for a window of tens of ms.
     */
    public static Map<Long, Long> runtimeNanosByThread(long pid) {
        Map<Long, Long> out = new HashMap<>();
        if (pid > 0) {
            threadRuntimes(pid, false, out);
            for (long child : descendants(pid)) {
                threadRuntimes(child, false, out);
            }
        }
        return out;
    }

    /** {@link #runtimeNanosByThread} of a JVM's JIT compiler threads only (see {@link #compilerTicks}). */
    public static Map<Long, Long> compilerRuntimeNanosByThread(long pid) {
        Map<Long, Long> out = new HashMap<>();
        if (pid > 0) {
            threadRuntimes(pid, true, out);
        }
        return out;
    }

    private static void threadRuntimes(long pid, boolean compilersOnly, Map<Long, Long> out) {
        try (var tasks = Files.list(Path.of("/proc/" + pid + "/task"))) {
            for (Path t : (Iterable<Path>) tasks::iterator) {
                try {
                    if (compilersOnly && !Files.readString(t.resolve("comm")).contains("CompilerThre")) {
                        continue;
                    }
                    String first = Files.readString(t.resolve("schedstat")).trim().split(" ")[0];
                    out.put(Long.parseLong(t.getFileName().toString()), Long.parseLong(first));
                } catch (IOException | RuntimeException e) {
                    // A thread that ended between the listing and the read.
                }
            }
        } catch (IOException | RuntimeException e) {
            // A process that ended, or no /proc.
        }
    }

    /**
     * The CPU time between two {@link #runtimeNanosByThread} readings, thread by thread: a thread
     * that ended in between loses only its time in between (a plain difference of sums would
     * lose its whole life), one that started counts whole.
     */
    public static long runtimeNanosBetween(Map<Long, Long> before, Map<Long, Long> after) {
        long sum = 0;
        for (Map.Entry<Long, Long> e : after.entrySet()) {
            sum += Math.max(0, e.getValue() - before.getOrDefault(e.getKey(), 0L));
        }
        return sum;
    }

    public static long cpuTicksTree(long pid) {
        long sum = cpuTicks(pid);
        for (long child : descendants(pid)) {
            sum += cpuTicks(child);
        }
        return sum;
    }

    static List<Long> descendants(long pid) {
        try (Stream<ProcessHandle> s = ProcessHandle.of(pid).map(ProcessHandle::descendants).orElse(Stream.empty())) {
            return s.map(ProcessHandle::pid).collect(Collectors.toList());
        } catch (RuntimeException e) {
            return List.of();
        }
    }

    /** {busy, total} ticks of all CPUs since boot, from the first line of /proc/stat. */
    public static long[] systemTicks() {
        try {
            String first = Files.readAllLines(Path.of("/proc/stat")).get(0);
            String[] f = first.trim().split("\\s+");
            long total = 0;
            long idle = 0;
            for (int i = 1; i < f.length && i <= 8; i++) {
                long v = Long.parseLong(f[i]);
                total += v;
                if (i == 4 || i == 5) { // idle, iowait
                    idle += v;
                }
            }
            return new long[] {total - idle, total};
        } catch (IOException | RuntimeException e) {
            return new long[] {0, 0};
        }
    }

    /** The first three fields of /proc/loadavg ("1.02 0.80 0.55"). */
    public static String loadavg() {
        try {
            String[] f = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
            return f[0] + " " + f[1] + " " + f[2];
        } catch (IOException | RuntimeException e) {
            return "";
        }
    }

    public static double load1() {
        String l = loadavg();
        if (l.isEmpty()) {
            return Double.NaN;
        }
        return Double.parseDouble(l.split(" ")[0]);
    }

    public static String cpuModel() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) {
                    return line.substring(line.indexOf(':') + 1).trim();
                }
            }
        } catch (IOException | RuntimeException e) {
            return "unknown";
        }
        return "unknown";
    }

    /** The hard limit of open files of this process (what children get, unless privileged), or -1. */
    public static long maxOpenFilesHard() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/limits"))) {
                if (line.startsWith("Max open files")) {
                    String[] f = line.substring("Max open files".length()).trim().split("\\s+");
                    return f[1].equals("unlimited") ? Long.MAX_VALUE : Long.parseLong(f[1]);
                }
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }

    public static long memTotalMb() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
                if (line.startsWith("MemTotal:")) {
                    return Long.parseLong(line.substring(9).replace("kB", "").trim()) / 1024;
                }
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }

    public static String kernel() {
        try {
            return Files.readString(Path.of("/proc/sys/kernel/osrelease")).trim();
        } catch (IOException e) {
            return System.getProperty("os.version");
        }
    }
}
