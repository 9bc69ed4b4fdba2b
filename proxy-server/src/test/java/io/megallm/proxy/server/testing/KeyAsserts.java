package io.megallm.proxy.server.testing;

import io.megallm.proxy.key.ApiKey;

import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * Assertions on pool keys that compare them exactly but print them masked: a failing test's
 * message is test output, and no full key goes into test output, fake or not.
 */
public final class KeyAsserts {

    private KeyAsserts() {
    }

    /** The same keys in the same order, compared in full. */
    public static void assertKeys(List<String> expected, List<String> actual, String message) {
        if (!expected.equals(actual)) {
            fail((message == null ? "" : message + " ==> ") + "expected: " + masked(expected) + " but was: "
                    + masked(actual));
        }
    }

    public static void assertKeys(List<String> expected, List<String> actual) {
        assertKeys(expected, actual, null);
    }

    /** The same key, compared in full. */
    public static void assertKey(String expected, String actual, String message) {
        if (!expected.equals(actual)) {
            fail((message == null ? "" : message + " ==> ") + "expected: " + ApiKey.mask(expected) + " but was: "
                    + (actual == null ? null : ApiKey.mask(actual)));
        }
    }

    /** The same count per key, compared in full. */
    public static void assertKeyCounts(Map<String, Long> expected, Map<String, Long> actual) {
        if (!expected.equals(actual)) {
            fail("expected: " + masked(expected) + " but was: " + masked(actual));
        }
    }

    public static List<String> masked(List<String> keys) {
        return keys.stream().map(k -> k == null ? null : ApiKey.mask(k)).toList();
    }

    private static Map<String, Long> masked(Map<String, Long> counts) {
        Map<String, Long> out = new TreeMap<>();
        counts.forEach((k, v) -> out.merge(ApiKey.mask(k), v, Long::sum));
        return out;
    }
}
