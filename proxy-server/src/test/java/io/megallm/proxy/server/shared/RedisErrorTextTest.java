package io.megallm.proxy.server.shared;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What of Redis' error goes into the log: its own text, without a script's id, an entry's name or a second line. */
class RedisErrorTextTest {

    @Test
    void keepsRedisOwnText() {
        assertEquals("NOPERM this user has no permissions to run the 'eval' command",
                RedisKeyStates.errorText("NOPERM this user has no permissions to run the 'eval' command"));
    }

    @Test
    void dropsTheScriptIdRedisAppends() {
        assertEquals("WRONGTYPE Operation against a key holding the wrong kind of value",
                RedisKeyStates.errorText("WRONGTYPE Operation against a key holding the wrong kind of value script: "
                        + "4f1c0ab3e2d8e9c1a7b6f5e4d3c2b1a0f9e8d7c6, on @user_script:23."));
    }

    @Test
    void namesNoEntryOfOursAndKeepsToOneShortLine() {
        String sha = "a".repeat(64);
        String text = RedisKeyStates.errorText("ERR something about megallm:{default}:key:" + sha + " here\nsecond line");
        assertEquals("ERR something about megallm:{…}:… here", text);
        assertTrue(RedisKeyStates.errorText("ERR " + "x".repeat(500)).length() <= 201);
        assertEquals("an error", RedisKeyStates.errorText(null));
    }
}
