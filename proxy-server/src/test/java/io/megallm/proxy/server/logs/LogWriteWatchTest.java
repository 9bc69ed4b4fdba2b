package io.megallm.proxy.server.logs;

import ch.qos.logback.core.status.ErrorStatus;
import ch.qos.logback.core.status.InfoStatus;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LogWriteWatchTest {

    @TempDir
    Path dir;

    /** What logback's resilient file stream reports on a full disk: each failure counts, one line a minute says so. */
    @Test
    void failedWritesCountAndAreOneLineAMinute() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        LogWriteWatch watch = new LogWriteWatch(new PrintStream(err, true, StandardCharsets.UTF_8));
        long before = LogWriteWatch.failures();
        for (int i = 0; i < 3; i++) {
            watch.addStatusEvent(new ErrorStatus("IO failure while writing to file [logs/access.log]", this,
                    new IOException("No space left on device")));
            // Logback reopens the file between failures and calls it recovered; that is no news.
            watch.addStatusEvent(new InfoStatus("Recovered from IO failure on file [logs/access.log]", this));
        }
        watch.addStatusEvent(new ErrorStatus("a configuration mistake, not a write", this));

        assertEquals(3, LogWriteWatch.failures() - before);
        String printed = err.toString(StandardCharsets.UTF_8);
        assertEquals(1, printed.lines().count(), printed);
        assertTrue(printed.contains("ERROR megallm-proxy - a log file cannot be written (No space left on device)"), printed);
    }

    @Test
    void theProbeSaysWhyALogFolderCannotBeWritten() throws Exception {
        assertNull(LogWriteWatch.probe(dir.resolve("logs")));
        Path inTheWay = dir.resolve("file");
        Files.writeString(inTheWay, "x");
        assertNotNull(LogWriteWatch.probe(inTheWay.resolve("logs")));
    }
}
