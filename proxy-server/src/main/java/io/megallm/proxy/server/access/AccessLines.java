package io.megallm.proxy.server.access;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.LoggingEvent;

import java.nio.charset.StandardCharsets;

/**
 * One batch of access lines as one logback event. {@link AccessLineEncoder} writes its bytes
 * as they are, the same array for every appender; the text exists only if an appender asks for
 * the message (a pattern layout someone added), and then on the writer thread. Before this the
 * batch was a String, copied once to hand it over and once more per appender to get its bytes
 * back: ~800 bytes of garbage per request.
 */
final class AccessLines extends LoggingEvent {

    private static final String FQCN = AccessLines.class.getName();

    private final Logger logger;
    private final byte[] bytes;
    private final int lines;
    private String text;

    AccessLines(Logger logger, byte[] bytes, int lines) {
        super(FQCN, logger, Level.INFO, null, null, null);
        this.logger = logger;
        this.bytes = bytes;
        this.lines = lines;
    }

    /** The same logger's event for other lines: part of a batch, for an appender that gets less. */
    AccessLines with(byte[] otherBytes, int otherLines) {
        return new AccessLines(logger, otherBytes, otherLines);
    }

    /** How many lines {@link #bytes()} holds. */
    int lines() {
        return lines;
    }

    /** The lines' UTF-8 bytes, newlines included. Not to be changed: every appender gets them. */
    byte[] bytes() {
        return bytes;
    }

    @Override
    public String getMessage() {
        return getFormattedMessage();
    }

    @Override
    public String getFormattedMessage() {
        String t = text;
        if (t == null) {
            t = new String(bytes, StandardCharsets.ISO_8859_1);
            text = t;
        }
        return t;
    }

    /**
     * What logback's AsyncAppender calls on the event loop before the hand-over: the thread and
     * the MDC, as the base class takes them, but not the text, which would undo the point.
     */
    @Override
    public void prepareForDeferredProcessing() {
        getThreadName();
        getMDCPropertyMap();
    }
}
