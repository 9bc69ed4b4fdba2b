package io.megallm.proxy.bench.harness;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Running small external commands (taskset, jcmd, nginx -v) with a time limit. */
public final class Tools {

    /** Exit code (-1: could not run or timed out) and combined output. */
    public record Result(int code, String output) {
    }

    private Tools() {
    }

    public static boolean has(String program) {
        return which(program) != null;
    }

    public static String which(String program) {
        String path = System.getenv("PATH");
        if (path == null) {
            path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        }
        for (String dir : (path + ":/usr/sbin:/sbin").split(":")) {
            File f = new File(dir, program);
            if (f.isFile() && f.canExecute()) {
                return f.getAbsolutePath();
            }
        }
        return null;
    }

    public static Result run(List<String> command, long timeoutSeconds) {
        File out = null;
        try {
            out = File.createTempFile("megallm-bench-cmd", ".out");
            Process p = new ProcessBuilder(command).redirectErrorStream(true)
                    .redirectOutput(out)
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
            if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                return new Result(-1, "timed out after " + timeoutSeconds + " s: " + String.join(" ", command));
            }
            return new Result(p.exitValue(), Files.readString(out.toPath(), StandardCharsets.UTF_8).trim());
        } catch (IOException e) {
            return new Result(-1, String.valueOf(e.getMessage()));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return new Result(-1, "interrupted");
        } finally {
            if (out != null) {
                out.delete();
            }
        }
    }

    /** The java launcher of this JVM. */
    public static String java() {
        String home = System.getProperty("java.home");
        File f = new File(home, "bin/java");
        return f.canExecute() ? f.getAbsolutePath() : "java";
    }

    public static String jdkTool(String name) {
        File f = new File(System.getProperty("java.home"), "bin/" + name);
        if (f.canExecute()) {
            return f.getAbsolutePath();
        }
        String w = which(name);
        return w != null ? w : name;
    }
}
