package io.megallm.proxy.bench.harness;

import java.util.ArrayList;
import java.util.List;

/**
 * Where each process runs. On a 2-core machine: the load client and the mock share core 0, and
 * each peer (Nginx, HAProxy, our proxy) gets core 1 alone, so every peer has the same CPU
 * budget of one core. With 4 or more cores the client gets cores of its own.
 */
public record Pinning(boolean enabled, String clientCpus, String mockCpus, String peerCpus) {

    public static Pinning forMachine(int cores, boolean wanted) {
        boolean taskset = Tools.has("taskset");
        if (!wanted || !taskset || cores < 2) {
            return new Pinning(false, "", "", "");
        }
        if (cores >= 4) {
            return new Pinning(true, "2-" + (cores - 1), "0", "1");
        }
        return new Pinning(true, "0", "0", "1");
    }

    public static Pinning none() {
        return new Pinning(false, "", "", "");
    }

    /**
     * The command, run under taskset on the given CPUs. (Open files: JVMs raise their soft limit
     * to the hard one by themselves, Nginx and HAProxy are configured for it.)
     */
    public List<String> wrap(List<String> command, String cpus) {
        List<String> out = new ArrayList<>();
        if (enabled && !cpus.isEmpty()) {
            out.add("taskset");
            out.add("-c");
            out.add(cpus);
        }
        out.addAll(command);
        return out;
    }

    /** Pins this JVM (every thread it has now; threads started later inherit) to the client CPUs. */
    public String pinSelf() {
        long pid = ProcessHandle.current().pid();
        StringBuilder notes = new StringBuilder();
        if (enabled) {
            Tools.Result r = Tools.run(List.of("taskset", "-a", "-p", "-c", clientCpus, Long.toString(pid)), 10);
            if (r.code() != 0) {
                notes.append("taskset on the harness failed: ").append(r.output());
            }
        }
        return notes.toString();
    }

    public String describe() {
        if (!enabled) {
            return "no pinning (taskset missing, fewer than 2 cores, or --no-pin)";
        }
        return "load client (this JVM) on CPU " + clientCpus + ", mock upstream on CPU " + mockCpus
                + ", the peer under test (Nginx, HAProxy or our proxy) on CPU " + peerCpus
                + " (taskset); every peer runs alone on its core, one at a time is loaded";
    }
}
