package io.megallm.proxy.server.logs;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What the clean-up takes for a rolled file is what the shipped logback.xml rolls to, and nothing else. */
class RolledLogsTest {

    private static String shippedLogbackXml() throws IOException {
        // The main resources' file, not logback-test.xml: the one in the jar.
        URL url = RolledLogsTest.class.getClassLoader().getResource("logback.xml");
        assertNotNull(url, "logback.xml on the classpath");
        assertTrue(url.toString().contains("/classes/logback.xml") || url.toString().contains(".jar!"), url.toString());
        try (InputStream in = url.openStream()) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    @Test
    void theNamesItRemovesAreTheShippedRollingPatternsAndMaxHistoryIsItsDays() throws IOException {
        String xml = shippedLogbackXml();
        List<String> patterns = new ArrayList<>();
        Matcher m = Pattern.compile("<fileNamePattern>([^<]*)</fileNamePattern>").matcher(xml);
        while (m.find()) {
            patterns.add(m.group(1));
        }
        assertEquals(List.of("${LOG_DIR}/app.%d{yyyy-MM-dd}.%i.log", "${LOG_DIR}/access.%d{yyyy-MM-dd}.%i.log"), patterns,
                "a changed rolling pattern must change RolledLogs too");
        Matcher history = Pattern.compile("<maxHistory>(\\d+)</maxHistory>").matcher(xml);
        int found = 0;
        while (history.find()) {
            assertEquals(RolledLogs.KEEP_DAYS, Integer.parseInt(history.group(1)));
            found++;
        }
        assertEquals(2, found);
    }

    @Test
    void onlyRolledNamesHaveADay() {
        assertEquals(LocalDate.of(2025, 1, 31), RolledLogs.dayOf("app.2025-01-31.0.log"));
        assertEquals(LocalDate.of(2025, 1, 31), RolledLogs.dayOf("access.2025-01-31.12.log"));
        for (String other : List.of("app.log", "access.log", "app.2025-01-31.log", "app.2025-01-31.0.log.gz",
                "app.2025-02-30.0.log", "my-app.2025-01-31.0.log", "app.2025-01-31.x.log", "keys.2025-01-31.0.log",
                "App.2025-01-31.0.log", "app.25-01-31.0.log", ".app.2025-01-31.0.log")) {
            assertNull(RolledLogs.dayOf(other), other);
        }
    }
}
