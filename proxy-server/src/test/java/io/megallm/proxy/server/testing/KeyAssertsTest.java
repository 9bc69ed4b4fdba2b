package io.megallm.proxy.server.testing;

import org.junit.jupiter.api.Test;
import org.opentest4j.AssertionFailedError;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A failing key assertion says which keys differ without printing any of them in full. */
class KeyAssertsTest {

    private static final String A = "sk-mega-aaaaaaaaaaaaSECRETaaaa0001";
    private static final String B = "sk-mega-bbbbbbbbbbbbSECRETbbbb0002";

    @Test
    void aFailureNamesTheKeysMasked() {
        String m1 = assertThrows(AssertionFailedError.class,
                () -> KeyAsserts.assertKeys(List.of(A, B), List.of(A, A), "order")).getMessage();
        String m2 = assertThrows(AssertionFailedError.class,
                () -> KeyAsserts.assertKey(A, B + "\r", null)).getMessage();
        String m3 = assertThrows(AssertionFailedError.class,
                () -> KeyAsserts.assertKeyCounts(Map.of(A, 1L), Map.of(B, 1L))).getMessage();
        for (String m : List.of(m1, m2, m3)) {
            assertFalse(m.contains("SECRET"), m);
            assertTrue(m.contains("0001"), "the masked form still tells keys apart: " + m);
        }
    }

    @Test
    void equalKeysPassAndAnyDifferenceFails() {
        assertDoesNotThrow(() -> KeyAsserts.assertKeys(List.of(A, B), List.of(A, B)));
        assertThrows(AssertionFailedError.class, () -> KeyAsserts.assertKey(A, "\uFEFF" + A, null));
    }
}
