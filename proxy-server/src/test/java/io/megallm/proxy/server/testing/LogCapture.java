package io.megallm.proxy.server.testing;

import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.classic.spi.IThrowableProxy;
import ch.qos.logback.core.AppenderBase;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;

/** Keeps every log line written during the tests, so tests can look for what must never be logged. */
public final class LogCapture extends AppenderBase<ILoggingEvent> {

    private static final ConcurrentLinkedQueue<String> LINES = new ConcurrentLinkedQueue<>();

    @Override
    protected void append(ILoggingEvent event) {
        String message = event.getFormattedMessage();
        if ("megallm.access".equals(event.getLoggerName())) {
            // Access messages are UTF-8 bytes one per char; their appenders write them with ISO-8859-1.
            message = new String(message.getBytes(StandardCharsets.ISO_8859_1), StandardCharsets.UTF_8);
        }
        StringBuilder b = new StringBuilder(event.getLevel().toString()).append(' ')
                .append(event.getLoggerName()).append(" - ").append(message);
        for (IThrowableProxy t = event.getThrowableProxy(); t != null; t = t.getCause()) {
            b.append(" | ").append(t.getClassName()).append(": ").append(t.getMessage());
        }
        LINES.add(b.toString());
    }

    public static List<String> lines() {
        return new ArrayList<>(LINES);
    }

    /** Lines logged since {@code mark} (a value of {@link #size()}). */
    public static List<String> since(int mark) {
        List<String> all = lines();
        return all.subList(Math.min(mark, all.size()), all.size());
    }

    public static int size() {
        return LINES.size();
    }
}
