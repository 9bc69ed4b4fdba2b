package io.megallm.proxy.server.keys;

import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.key.KeyClock;
import io.megallm.proxy.key.KeyState;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Contract §4 and §7 together: a proxy that starts before its key file is there (Docker made a
 * directory of the missing mount, or the file comes late) starts with zero keys and picks them up
 * on a reload. The states its KEY_STATE_FILE holds for those keys must still apply to them, and
 * must not be wiped from the file by that reload.
 */
class KeyStateLateKeyFileTest {

    @Test
    void statesSavedForKeysThatArriveAfterStartStillApplyAndStayInTheFile() throws Exception {
        List<String> keys = ProxyUnderTest.keys(2);
        Path dir;
        try (ProxyUnderTest first = ProxyUnderTest.start(keys, Map.of("KEY_RECHECK", "600"))) {
            dir = first.workDir;
            first.upstream.on(keys.get(1), MockUpstream.json(401, "{}"));
            first.chat();
            assertEquals(200, first.chat().statusCode());
            assertEquals(KeyState.Kind.FAILED, first.server.keys().keys().get(1).state().kind());
        } // the state file says key 1 failed

        Path late = dir.resolve("data/late-keys.txt");
        try (ProxyUnderTest second = ProxyUnderTest.start(keys,
                Map.of("KEY_RECHECK", "600", "KEYS_FILE", "data/late-keys.txt"), KeyClock.SYSTEM, dir)) {
            assertEquals(0, second.server.keys().keys().size(), "no key file yet: zero keys");
            Files.writeString(late, String.join("\n", keys) + "\n", StandardCharsets.UTF_8);
            assertEquals(200, second.post("/admin/reload-keys", "").statusCode());
            List<ApiKey> now = second.server.keys().keys();
            assertEquals(2, now.size());
            assertEquals(KeyState.Kind.FAILED, now.get(1).state().kind(),
                    "the key the state file says failed came back available once the key file arrived");
        }
    }
}
