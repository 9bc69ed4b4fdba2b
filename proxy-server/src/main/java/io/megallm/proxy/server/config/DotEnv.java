package io.megallm.proxy.server.config;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Reads a {@code .env} file: {@code NAME=value} lines, optional {@code export}, quotes, '#' comments. */
public final class DotEnv {

    private DotEnv() {
    }

    public static Map<String, String> read(Path file) throws ConfigError {
        Map<String, String> values = new LinkedHashMap<>();
        if (!Files.isRegularFile(file)) {
            return values;
        }
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new ConfigError(".env could not be read: " + e.getClass().getSimpleName());
        }
        for (int i = 0; i < lines.size(); i++) {
            String raw = lines.get(i);
            if (i == 0 && raw.startsWith("\uFEFF")) {
                // Notepad's UTF-8 mark: kept, it made the first name another one, and that setting was lost.
                raw = raw.substring(1);
            }
            String line = raw.strip();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            if (line.startsWith("export ")) {
                line = line.substring(7).strip();
            }
            int eq = line.indexOf('=');
            if (eq <= 0) {
                continue;
            }
            String name = line.substring(0, eq).strip();
            String value = line.substring(eq + 1).strip();
            int close = quoteEnd(value);
            if (close > 0) {
                value = value.substring(1, close);
            } else {
                int hash = value.indexOf(" #");
                if (hash >= 0) {
                    value = value.substring(0, hash).strip();
                }
            }
            values.put(name, value);
        }
        return values;
    }

    /**
     * Where a quoted value's closing quote is: the last character, or the quote followed by a
     * comment ({@code KEY="value" # note}, which Compose reads as {@code value}); -1 when unquoted.
     */
    private static int quoteEnd(String value) {
        if (value.length() < 2 || value.charAt(0) != '"' && value.charAt(0) != '\'') {
            return -1;
        }
        char quote = value.charAt(0);
        if (value.charAt(value.length() - 1) == quote) {
            return value.length() - 1;
        }
        int close = value.indexOf(quote, 1);
        return close > 0 && value.substring(close + 1).strip().startsWith("#") ? close : -1;
    }
}
