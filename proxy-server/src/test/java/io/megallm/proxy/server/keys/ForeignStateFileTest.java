package io.megallm.proxy.server.keys;

import io.megallm.proxy.server.testing.LogCapture;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * KEY_STATE_FILE pointed at a file that is no state file (a copy-paste of KEYS_FILE's value, the
 * config file): the proxy must not write key states over the operator's file.
 */
class ForeignStateFileTest {

    @Test
    void aStateFileSettingThatNamesTheKeyFileNeverWritesOverTheKeys() throws Exception {
        Path keysFile;
        String before;
        int mark = LogCapture.size();
        try (ProxyUnderTest p = ProxyUnderTest.start(ProxyUnderTest.keys(2),
                Map.of("KEY_STATE_FILE", "data/keys.txt"))) {
            keysFile = p.workDir.resolve("data/keys.txt");
            before = Files.readString(keysFile, StandardCharsets.UTF_8);
            p.upstream.on(p.keys.get(0), MockUpstream.json(401, "{}"));
            assertEquals(200, p.chat().statusCode(), "the second key answers");
        } // the shutdown writes the pending key states
        List<String> log = LogCapture.since(mark);
        assertEquals(before, Files.readString(keysFile, StandardCharsets.UTF_8), "the key file is the operator's");
        assertTrue(log.stream().anyMatch(l -> l.startsWith("WARN") && l.contains("KEY_STATE_FILE")
                && l.contains("not a key state file")), log.toString());
    }
}
