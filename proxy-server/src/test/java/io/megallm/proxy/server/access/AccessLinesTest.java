package io.megallm.proxy.server.access;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

class AccessLinesTest {

    @Test
    void numbersAndTextAreWrittenAsTheirBytesAndTheBufferGrows() {
        LineBuffer b = new LineBuffer(4);
        b.append("rid=").append(0L).append(' ').append(-42L).append(' ').append(Long.MAX_VALUE).append(' ')
                .append(Long.MIN_VALUE).append(' ').append(true).append(' ').append(7).append('\n');
        String expected = "rid=0 -42 9223372036854775807 -9223372036854775808 true 7\n";
        assertEquals(expected.length(), b.length());
        assertEquals(expected, new String(b.take(), StandardCharsets.ISO_8859_1));
        assertEquals(0, b.length(), "take() empties the buffer");
        b.append("x");
        assertEquals("x", new String(b.take(), StandardCharsets.ISO_8859_1));
    }

    @Test
    void aBatchReachesEveryAppenderAsTheSameBytesAndAsTextToThoseThatAskForIt() {
        LoggerContext context = new LoggerContext();
        Logger logger = context.getLogger("megallm.access.test");
        ListAppender<ILoggingEvent> list = new ListAppender<>();
        list.setContext(context);
        list.start();
        logger.addAppender(list);
        // "é" as its two UTF-8 bytes, one char each, the way AccessLog builds lines.
        byte[] bytes = "a=1 model=caf\u00c3\u00a9\nb=2\n".getBytes(StandardCharsets.ISO_8859_1);

        logger.callAppenders(new AccessLines(logger, bytes, 2));

        ILoggingEvent event = list.list.get(0);
        AccessLineEncoder encoder = new AccessLineEncoder();
        assertSame(bytes, encoder.encode(event), "no copy per appender");
        assertArrayEquals("a=1 model=caf\u00e9\nb=2\n".getBytes(StandardCharsets.UTF_8), encoder.encode(event));
        assertEquals("a=1 model=caf\u00c3\u00a9\nb=2\n", event.getFormattedMessage());
        assertEquals(event.getFormattedMessage(), event.getMessage());
        context.stop();
    }
}
