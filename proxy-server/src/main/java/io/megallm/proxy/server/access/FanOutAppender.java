package io.megallm.proxy.server.access;

import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.Appender;
import ch.qos.logback.core.ConsoleAppender;
import ch.qos.logback.core.UnsynchronizedAppenderBase;
import ch.qos.logback.core.spi.AppenderAttachable;
import ch.qos.logback.core.spi.AppenderAttachableImpl;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.function.LongSupplier;

/**
 * Hands each event to every appender attached to it. logback's {@code AsyncAppender} takes one
 * appender only (it drops the others with a status warning), and the access lines go to the file
 * and to the console: this keeps them behind one queue and one writer thread instead of two, so
 * the event loops pay one hand-off per batch.
 *
 * <p>The console gets at most {@code ACCESS_LOG_CONSOLE_RATE} access lines a second. Its sinks
 * keep little: compose's json-file log keeps 50 MB, journald suppresses a unit past 10,000
 * messages in 30 s. A gateway's request rate would fill them with access lines in seconds and
 * push out, or get suppressed with, the events the console is read for (key state changes,
 * reloads, errors). Past the rate, the rest of that second's lines go to {@code access.log}
 * only, and the console says so once in that second. The file always gets every line.
 */
public final class FanOutAppender extends UnsynchronizedAppenderBase<ILoggingEvent>
        implements AppenderAttachable<ILoggingEvent> {

    private final AppenderAttachableImpl<ILoggingEvent> targets = new AppenderAttachableImpl<>();
    private boolean console = true;
    private int consoleRate;
    private LongSupplier clock = System::currentTimeMillis;

    /** Fixed at start: the writer thread reads them for every batch. */
    private List<Appender<ILoggingEvent>> files = List.of();
    private List<Appender<ILoggingEvent>> consoles = List.of();

    /**
     * The console's budget: lines given in the current second of the clock. Only the one thread
     * that appends touches it: the AsyncAppender's writer in logback.xml.
     */
    private long second = Long.MIN_VALUE;
    private int givenThisSecond;
    private boolean notedThisSecond;

    /**
     * {@code ACCESS_LOG_CONSOLE}: false leaves the console appenders out. At tens of thousands of
     * requests a second the console copy doubles the bytes written (and, in Docker, what
     * {@code docker logs} keeps), for lines that are in {@code access.log} anyway.
     */
    public void setConsole(boolean console) {
        this.console = console;
    }

    /** {@code ACCESS_LOG_CONSOLE_RATE}: access lines a second on the console at most; 0 for no limit. */
    public void setConsoleRate(int linesPerSecond) {
        this.consoleRate = Math.max(0, linesPerSecond);
    }

    /** The wall clock that starts each second's budget; tests set their own. */
    void setClock(LongSupplier millis) {
        this.clock = millis;
    }

    @Override
    public void start() {
        List<Appender<ILoggingEvent>> f = new ArrayList<>();
        List<Appender<ILoggingEvent>> c = new ArrayList<>();
        targets.iteratorForAppenders().forEachRemaining(a -> (a instanceof ConsoleAppender ? c : f).add(a));
        if (!console) {
            for (Appender<ILoggingEvent> a : c) {
                targets.detachAppender(a);
            }
            c.clear();
        }
        files = List.copyOf(f);
        consoles = List.copyOf(c);
        super.start();
    }

    @Override
    protected void append(ILoggingEvent event) {
        for (Appender<ILoggingEvent> a : files) {
            a.doAppend(event);
        }
        if (consoles.isEmpty()) {
            return;
        }
        ILoggingEvent share = consoleShare(event);
        if (share != null) {
            for (Appender<ILoggingEvent> a : consoles) {
                a.doAppend(share);
            }
        }
    }

    /** What of {@code event} the console gets this second: all of it, its first lines and a note, or nothing. */
    private ILoggingEvent consoleShare(ILoggingEvent event) {
        if (consoleRate == 0) {
            return event;
        }
        long now = clock.getAsLong();
        long s = Math.floorDiv(now, 1000L);
        if (s != second) {
            second = s;
            givenThisSecond = 0;
            notedThisSecond = false;
        }
        int lines = event instanceof AccessLines batch ? batch.lines() : 1;
        int left = consoleRate - givenThisSecond;
        if (lines <= left) {
            givenThisSecond += lines;
            return event;
        }
        if (notedThisSecond || !(event instanceof AccessLines batch)) {
            givenThisSecond = consoleRate;
            return null;
        }
        // left is 0..consoleRate: the budget is only ever spent up to the rate.
        notedThisSecond = true;
        givenThisSecond = consoleRate;
        byte[] bytes = batch.bytes();
        int end = endOfLines(bytes, left);
        byte[] note = (AccessLog.TIME.format(Instant.ofEpochMilli(now)) + " INFO  megallm.access - more than " + consoleRate
                + " access lines this second: the rest of them are in access.log only (ACCESS_LOG_CONSOLE_RATE)\n")
                .getBytes(StandardCharsets.US_ASCII);
        byte[] out = new byte[end + note.length];
        System.arraycopy(bytes, 0, out, 0, end);
        System.arraycopy(note, 0, out, end, note.length);
        return batch.with(out, left + 1);
    }

    /** The offset just past the {@code n}th newline of {@code bytes} (0 for none). */
    static int endOfLines(byte[] bytes, int n) {
        int at = 0;
        for (int seen = 0; seen < n && at < bytes.length; at++) {
            if (bytes[at] == '\n') {
                seen++;
            }
        }
        return at;
    }

    @Override
    public void stop() {
        super.stop();
        targets.detachAndStopAllAppenders();
    }

    @Override
    public void addAppender(Appender<ILoggingEvent> appender) {
        targets.addAppender(appender);
    }

    @Override
    public Iterator<Appender<ILoggingEvent>> iteratorForAppenders() {
        return targets.iteratorForAppenders();
    }

    @Override
    public Appender<ILoggingEvent> getAppender(String name) {
        return targets.getAppender(name);
    }

    @Override
    public boolean isAttached(Appender<ILoggingEvent> appender) {
        return targets.isAttached(appender);
    }

    @Override
    public void detachAndStopAllAppenders() {
        targets.detachAndStopAllAppenders();
    }

    @Override
    public boolean detachAppender(Appender<ILoggingEvent> appender) {
        return targets.detachAppender(appender);
    }

    @Override
    public boolean detachAppender(String name) {
        return targets.detachAppender(name);
    }
}
