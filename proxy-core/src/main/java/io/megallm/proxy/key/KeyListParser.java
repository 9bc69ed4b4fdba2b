package io.megallm.proxy.key;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/** Parses the key file format: one key a line, trimmed, '#' comments, duplicates once. */
public final class KeyListParser {

    private KeyListParser() {
    }

    public static ParsedKeys parse(List<String> lines) {
        return parse(lines, Integer.MAX_VALUE);
    }

    /**
     * Stops at the first key past {@code maxKeys} (the result then holds {@code maxKeys + 1} keys,
     * for the caller to refuse): a file of a million keys is refused without holding a million.
     */
    public static ParsedKeys parse(Iterable<String> lines, int maxKeys) {
        Set<String> keys = new LinkedHashSet<>();
        List<Integer> malformed = new ArrayList<>();
        Iterator<String> it = lines.iterator();
        for (int i = 0; it.hasNext() && keys.size() <= maxKeys; i++) {
            String line = it.next().strip();
            if (i == 0 && !line.isEmpty() && line.charAt(0) == '\uFEFF') {
                line = line.substring(1).strip();
            }
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            if (!wellFormed(line)) {
                malformed.add(i + 1);
                continue;
            }
            keys.add(line);
        }
        return new ParsedKeys(List.copyOf(keys), List.copyOf(malformed));
    }

    /** A key goes into an HTTP header, so anything but visible ASCII would break the request. */
    private static boolean wellFormed(String key) {
        for (int i = 0; i < key.length(); i++) {
            char c = key.charAt(i);
            if (c <= 0x20 || c >= 0x7f) {
                return false;
            }
        }
        return true;
    }
}
