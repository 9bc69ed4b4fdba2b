package io.megallm.proxy.server.logs;

import ch.qos.logback.core.status.Status;
import ch.qos.logback.core.status.StatusListener;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * Makes a log file that cannot be written visible. Logback keeps writing failures to itself
 * (its status list) and retries the file on its own; without this, a full disk lost access lines
 * with no word anywhere. Registered in logback.xml: a failure is a line on standard error (the
 * console, which `docker logs` keeps), at most one a minute, and every failure counts in
 * {@code megallm_log_write_failures_total}. Logback's "recovered" is no sign that lines go
 * through again (on a full disk it reopens the file, and the next write fails), so the line
 * says nothing of recovery: the counter standing still does.
 */
public final class LogWriteWatch implements StatusListener {

    static final long LINE_INTERVAL_NANOS = TimeUnit.MINUTES.toNanos(1);

    private static final LongAdder FAILURES = new LongAdder();

    private final PrintStream out;
    private final AtomicLong lastLine = new AtomicLong(System.nanoTime() - LINE_INTERVAL_NANOS);

    public LogWriteWatch() {
        this(System.err);
    }

    LogWriteWatch(PrintStream out) {
        this.out = out;
    }

    /** Failed writes (and opens) of a log file since start. */
    public static long failures() {
        return FAILURES.sum();
    }

    @Override
    public void addStatusEvent(Status status) {
        if (status.getLevel() != Status.ERROR || !ioFailure(status.getThrowable())) {
            return;
        }
        FAILURES.increment();
        long now = System.nanoTime();
        long last = lastLine.get();
        if (now - last >= LINE_INTERVAL_NANOS && lastLine.compareAndSet(last, now)) {
            out.println(Instant.now() + " ERROR megallm-proxy - a log file cannot be written ("
                    + status.getThrowable().getMessage() + "): its lines are lost until it can be ("
                    + FAILURES.sum() + " failed writes since start, megallm_log_write_failures_total; at most one"
                    + " such line a minute)");
        }
    }

    private static boolean ioFailure(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof IOException) {
                return true;
            }
        }
        return false;
    }

    /**
     * Whether app.log and access.log can be created in {@code logDir}: null if so, else why not.
     * Asked at start, before logging begins, so that the operator reads one plain line rather than
     * logback's own account of the failure.
     */
    public static String probe(Path logDir) {
        try {
            Files.createDirectories(logDir);
            Path probe = Files.createTempFile(logDir, ".log-dir", ".probe");
            Files.delete(probe);
            return null;
        } catch (IOException | SecurityException | UnsupportedOperationException e) {
            return e.getMessage() == null ? e.getClass().getSimpleName() : e.toString();
        }
    }
}
