package io.megallm.proxy.key;

/**
 * One key's state as it survives a restart: named by the SHA-256 of the key (never the key),
 * deadlines on the wall clock because the monotonic clock starts over with the process.
 *
 * @param id              SHA-256 of the key, hex
 * @param kind            available (with a 429 count worth keeping), cooling_down or failed
 * @param reason          why it is out ("upstream 401"), null when available
 * @param untilEpochMillis end of a rest, or a failed key's next trial; 0 when there is none
 * @param strikes         consecutive 429s
 * @param recheckSeconds  a failed key's current wait between trials; 0: no trials
 */
public record SavedKeyState(String id, KeyState.Kind kind, String reason, long untilEpochMillis, int strikes,
                            long recheckSeconds) {
}
