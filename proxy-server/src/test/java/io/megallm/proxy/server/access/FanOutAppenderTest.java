package io.megallm.proxy.server.access;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.classic.util.LogbackMDCAdapter;
import ch.qos.logback.core.ConsoleAppender;
import ch.qos.logback.core.OutputStreamAppender;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The access log's fan-out through real logback appenders: a stream-backed file stand-in and a console. */
class FanOutAppenderTest {

    /** A console appender whose console is a byte array: what FanOutAppender sees is its type. */
    private static final class CapturedConsole extends ConsoleAppender<ILoggingEvent> {
        final ByteArrayOutputStream out = new ByteArrayOutputStream();

        @Override
        public void start() {
            super.start();
            setOutputStream(out);
        }
    }

    private final LoggerContext context = new LoggerContext();
    private final Logger logger = context.getLogger("megallm.access.test");
    private final ByteArrayOutputStream file = new ByteArrayOutputStream();
    private final CapturedConsole console = new CapturedConsole();
    private final AtomicLong now = new AtomicLong(1_700_000_000_000L);
    private FanOutAppender fanOut;

    @BeforeEach
    void setUp() {
        context.setMDCAdapter(new LogbackMDCAdapter()); // what a configured context has; the appenders read it
        OutputStreamAppender<ILoggingEvent> fileAppender = new OutputStreamAppender<>();
        fileAppender.setContext(context);
        fileAppender.setEncoder(encoder());
        fileAppender.setOutputStream(file);
        fileAppender.start();
        console.setContext(context);
        console.setEncoder(encoder());
        console.start();
        fanOut = new FanOutAppender();
        fanOut.setContext(context);
        fanOut.setClock(now::get);
        fanOut.addAppender(fileAppender);
        fanOut.addAppender(console);
    }

    @AfterEach
    void tearDown() {
        fanOut.stop();
        context.stop();
    }

    private AccessLineEncoder encoder() {
        AccessLineEncoder e = new AccessLineEncoder();
        e.setContext(context);
        e.start();
        return e;
    }

    private void batch(int first, int count) {
        StringBuilder b = new StringBuilder();
        for (int i = first; i < first + count; i++) {
            b.append("line=").append(i).append('\n');
        }
        fanOut.doAppend(new AccessLines(logger, b.toString().getBytes(StandardCharsets.US_ASCII), count));
    }

    private static long count(String text, String what) {
        return text.lines().filter(l -> l.contains(what)).count();
    }

    @Test
    void pastTheRateTheConsoleGetsTheFirstLinesAndOneNoteAndTheFileGetsEveryLine() {
        fanOut.setConsoleRate(5);
        fanOut.start();

        batch(0, 3);
        batch(3, 4); // the budget runs out inside this batch: 2 of its lines, then the note
        batch(7, 10); // nothing more this second, and no second note

        String fileText = file.toString(StandardCharsets.US_ASCII);
        String consoleText = console.out.toString(StandardCharsets.US_ASCII);
        assertEquals(17, count(fileText, "line="), fileText);
        assertEquals("line=0\nline=1\nline=2\nline=3\nline=4\n",
                consoleText.substring(0, consoleText.indexOf("line=4\n") + 7), consoleText);
        assertEquals(5, count(consoleText, "line="), consoleText);
        assertEquals(1, count(consoleText, "more than 5 access lines this second"), consoleText);
        assertTrue(consoleText.endsWith("(ACCESS_LOG_CONSOLE_RATE)\n"), consoleText);

        now.addAndGet(1_000); // the next second: a fresh budget
        batch(17, 2);
        consoleText = console.out.toString(StandardCharsets.US_ASCII);
        assertTrue(consoleText.endsWith("line=17\nline=18\n"), consoleText);
        assertEquals(19, count(file.toString(StandardCharsets.US_ASCII), "line="));
    }

    @Test
    void aBatchThatStartsOverTheBudgetGivesTheConsoleOnlyTheNote() {
        fanOut.setConsoleRate(2);
        fanOut.start();

        batch(0, 2);
        batch(2, 3);

        String consoleText = console.out.toString(StandardCharsets.US_ASCII);
        assertEquals(2, count(consoleText, "line="), consoleText);
        assertEquals(1, count(consoleText, "more than 2 access lines"), consoleText);
        assertEquals(5, count(file.toString(StandardCharsets.US_ASCII), "line="));
    }

    @Test
    void rateZeroIsNoLimit() {
        fanOut.setConsoleRate(0);
        fanOut.start();

        batch(0, 1000);

        String consoleText = console.out.toString(StandardCharsets.US_ASCII);
        assertEquals(1000, count(consoleText, "line="));
        assertEquals(0, count(consoleText, "more than"));
    }

    @Test
    void withTheConsoleOffOnlyTheFileGetsLines() {
        fanOut.setConsole(false);
        fanOut.setConsoleRate(5);
        fanOut.start();

        batch(0, 3);

        assertEquals(0, console.out.size());
        assertEquals(3, count(file.toString(StandardCharsets.US_ASCII), "line="));
    }

    @Test
    void endOfLinesFindsTheOffsetPastTheNthNewline() {
        byte[] b = "a\nbb\nccc\n".getBytes(StandardCharsets.US_ASCII);
        assertEquals(0, FanOutAppender.endOfLines(b, 0));
        assertEquals(2, FanOutAppender.endOfLines(b, 1));
        assertEquals(5, FanOutAppender.endOfLines(b, 2));
        assertEquals(9, FanOutAppender.endOfLines(b, 3));
        assertEquals(9, FanOutAppender.endOfLines(b, 7));
    }
}
