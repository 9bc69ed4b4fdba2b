package io.megallm.proxy.server.clients;

import io.megallm.proxy.server.config.OperatorFile;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Reads the client file of {@code PROXY_API_KEYS=@path} (contract §13): one client a line, the key
 * first, then optional {@code name=…}, {@code rpm=N}, {@code tpm=N}, {@code daily_tokens=N},
 * {@code max_streams=N}, {@code models=a,b,…}; {@code #} comments and blank lines. A bad line is
 * skipped with a warning that names its line number, never its content (it holds a key).
 */
public final class ClientFile {

    /** Far more clients than any deployment has; each costs heap and series on /metrics. */
    static final int MAX_CLIENTS = 100_000;
    /**
     * MAX_CLIENTS lines of ~160 bytes: a larger file is not read at all. It is read whole, and held
     * about three times over while it is parsed (bytes, text, lines): 64 MiB took a 128 MB heap.
     */
    static final long MAX_FILE_BYTES = 16L * 1024 * 1024;
    /** Warnings named one by one; past this many, one line says how many more. */
    static final int MAX_WARNINGS = 20;

    /** The clients read, one warning per skipped or ambiguous line (capped), and how many lines were skipped. */
    public record Parsed(List<ClientSpec> clients, List<String> warnings, int skipped) {
    }

    private ClientFile() {
    }

    /**
     * Reads and parses the file, or refuses it whole (the message names the file, never its
     * content). Refused, like the key file: a file that is not text, an encrypted one, one where
     * more lines are skipped than read (the wrong file: its fragments would become clients), or
     * one past {@value #MAX_CLIENTS} clients.
     */
    public static Parsed read(Path file) throws IOException {
        String text = OperatorFile.readList(file, MAX_FILE_BYTES, "client file");
        Parsed parsed = parse(text);
        if (parsed.clients().size() > MAX_CLIENTS) {
            // parse stopped at the first client past the cap: the count beyond it is not known.
            throw new OperatorFile.Refused("the client file " + file + " has more than the " + MAX_CLIENTS
                    + " clients it may hold");
        }
        if (parsed.skipped() > parsed.clients().size()) {
            throw new OperatorFile.Refused("the client file " + file + " is not a client list: " + parsed.skipped()
                    + " of its lines are not clients and " + parsed.clients().size() + " are");
        }
        return parsed;
    }

    /**
     * Parses the text; stops at the first client past {@value #MAX_CLIENTS} (then the result holds
     * one client more than that and {@link #read} refuses it), so that a file of a million lines
     * never becomes a million clients in memory only to be refused.
     */
    public static Parsed parse(String text) {
        if (text.startsWith("\uFEFF")) {
            // Notepad's UTF-8 mark is no part of the first key: kept, that client got 401 for good
            // (the key file drops it too).
            text = text.substring(1);
        }
        Map<String, ClientSpec> byKey = new LinkedHashMap<>();
        List<String> warnings = new ArrayList<>();
        int skipped = 0;
        int unnamed = 0;
        Map<String, Integer> lineOfLabel = new HashMap<>();
        // Every line ending String.lines() knows, a lone CR included: the configuration check at
        // start counts the clients the same way, and a file saved with old Mac line ends must not
        // read as one bad line (which left no client and, before, no key check at all).
        Iterator<String> lines = text.lines().iterator();
        for (int i = 0; lines.hasNext() && byKey.size() <= MAX_CLIENTS; i++) {
            String line = lines.next().strip();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            String problem = null;
            ClientSpec spec = null;
            try {
                spec = line(line);
            } catch (IllegalArgumentException e) {
                problem = e.getMessage();
            }
            String warning = null;
            if (spec == null) {
                skipped++;
                warning = "client file line " + (i + 1) + " skipped: " + problem;
            } else if (byKey.putIfAbsent(spec.key(), spec) != null) {
                skipped++;
                warning = "client file line " + (i + 1) + " skipped: the same key is on an earlier line";
            } else {
                Integer first = lineOfLabel.putIfAbsent(spec.label(), i + 1);
                if (first != null) {
                    // Kept (its own key and limits), but /metrics, /admin/usage and the logs show
                    // clients by label: two series with the same labels, rows no one can tell apart.
                    warning = "client file line " + (i + 1) + " is shown as the client of line " + first
                            + " is (the same name, or no name and the same masked key): give it a name= of its own";
                }
            }
            if (warning != null && warnings.size() < MAX_WARNINGS) {
                warnings.add(warning);
            } else if (warning != null) {
                // A pasted log of a million lines must not become a million warnings, not even for a moment.
                unnamed++;
            }
        }
        if (unnamed > 0) {
            warnings.add("client file: " + unnamed + " more lines skipped or ambiguous");
        }
        return new Parsed(List.copyOf(byKey.values()), List.copyOf(warnings), skipped);
    }

    private static ClientSpec line(String line) {
        String[] parts = line.split("[ \t]+");
        String key = parts[0];
        if (key.contains("=")) {
            throw new IllegalArgumentException("the line must start with the client key");
        }
        for (int i = 0; i < key.length(); i++) {
            char c = key.charAt(i);
            if (c < 0x21 || c > 0x7e) {
                // As in the key file: a key is visible ASCII. A byte-order mark or an accented
                // letter inside a key was loaded without a word and could never authenticate.
                throw new IllegalArgumentException("the key has a control character or one that is not ASCII");
            }
        }
        String name = null;
        long rpm = 0;
        long tpm = 0;
        long daily = 0;
        int streams = 0;
        Set<String> models = null;
        Set<String> seen = new LinkedHashSet<>();
        for (int p = 1; p < parts.length; p++) {
            String part = parts[p];
            if (part.startsWith("#")) {
                break;
            }
            int eq = part.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("expected name=value after the key, found a word without '='");
            }
            String field = part.substring(0, eq);
            String value = part.substring(eq + 1);
            if (!seen.add(field)) {
                throw new IllegalArgumentException(field + " is given twice");
            }
            switch (field) {
                case "name" -> {
                    if (value.isEmpty() || !value.matches("[A-Za-z0-9._@:/+-]{1,64}")) {
                        throw new IllegalArgumentException("name must be 1 to 64 letters, digits or ._@:/+-");
                    }
                    name = value;
                }
                case "rpm" -> rpm = positive(field, value);
                case "tpm" -> tpm = positive(field, value);
                case "daily_tokens" -> daily = positive(field, value);
                case "max_streams" -> streams = (int) Math.min(Integer.MAX_VALUE, positive(field, value));
                case "models" -> {
                    Set<String> m = new LinkedHashSet<>();
                    for (String model : value.split(",")) {
                        if (!model.isBlank()) {
                            m.add(model.strip());
                        }
                    }
                    if (m.isEmpty()) {
                        throw new IllegalArgumentException("models= names no model");
                    }
                    models = Set.copyOf(m);
                }
                default -> throw new IllegalArgumentException("unknown field " + safe(field));
            }
        }
        return new ClientSpec(key, name, rpm, tpm, daily, streams, models);
    }

    private static long positive(String field, String value) {
        try {
            long n = Long.parseLong(value);
            if (n > 0) {
                return n;
            }
        } catch (NumberFormatException e) {
            // said below
        }
        throw new IllegalArgumentException(field + " must be a whole number above 0");
    }

    /** A field name in a warning: short and printable, so that a key pasted in the wrong place never shows. */
    private static String safe(String field) {
        return field.length() <= 16 && field.matches("[a-z_]+") ? field : "(not shown)";
    }
}
