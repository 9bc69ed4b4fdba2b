package io.megallm.proxy.key;

import java.util.List;

/**
 * Keys read from a key list, in file order, duplicates dropped, plus the line numbers that
 * were skipped as malformed (never their content).
 */
public record ParsedKeys(List<String> keys, List<Integer> malformedLines) {
}
