package io.megallm.proxy.server.access;

import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.Appender;
import ch.qos.logback.core.ConsoleAppender;
import ch.qos.logback.core.UnsynchronizedAppenderBase;
import ch.qos.logback.core.spi.AppenderAttachable;
import ch.qos.logback.core.spi.AppenderAttachableImpl;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

/**
 * Hands each event to every appender attached to it. logback's {@code AsyncAppender} takes one
 * appender only (it drops the others with a status warning), and the access lines go to the file
 * and to the console: this keeps them behind one queue and one writer thread instead of two, so
 * the event loops pay one hand-off per batch.
 */
public final class FanOutAppender extends UnsynchronizedAppenderBase<ILoggingEvent>
        implements AppenderAttachable<ILoggingEvent> {

    private final AppenderAttachableImpl<ILoggingEvent> targets = new AppenderAttachableImpl<>();
    private boolean console = true;

    /**
     * {@code ACCESS_LOG_CONSOLE}: false leaves the console appenders out. At tens of thousands of
     * requests a second the console copy doubles the bytes written (and, in Docker, what
     * {@code docker logs} keeps), for lines that are in {@code access.log} anyway.
     */
    public void setConsole(boolean console) {
        this.console = console;
    }

    @Override
    public void start() {
        if (!console) {
            List<Appender<ILoggingEvent>> consoles = new ArrayList<>();
            targets.iteratorForAppenders().forEachRemaining(a -> {
                if (a instanceof ConsoleAppender) {
                    consoles.add(a);
                }
            });
            for (Appender<ILoggingEvent> a : consoles) {
                targets.detachAppender(a);
            }
        }
        super.start();
    }

    @Override
    protected void append(ILoggingEvent event) {
        targets.appendLoopOnAppenders(event);
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
