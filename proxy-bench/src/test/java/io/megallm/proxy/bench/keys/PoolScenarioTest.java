package io.megallm.proxy.bench.keys;

import org.junit.jupiter.api.Test;

import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The capacity a proxy keeping §7's trial schedule can reach, against the standard one-minute scenario. */
class PoolScenarioTest {

    private static final long S = TimeUnit.SECONDS.toNanos(1);
    private final PoolScenario s = PoolScenario.standard(60 * S);

    @Test
    void aFlappingKeyComesBackAtItsFirstTrialAfterItIsUp() {
        // Down 0-9 s: trials at 5 s (still down) and 5 + 10 = 15 s.
        assertEquals(15 * S, s.healedAt(s.flapWindows().get(0), 5 * S));
        // Down 45-51 s: trials at 50 s (still down) and 60 s.
        assertEquals(60 * S, s.healedAt(s.flapWindows().get(1), 5 * S));
        assertEquals(Long.MAX_VALUE, s.healedAt(s.flapWindows().get(0), 0), "KEY_RECHECK=0: never");
    }

    @Test
    void reachableCapacityLeavesOutTheFlappingKeysUntilTheirTrial() {
        assertEquals(80, s.reachableAt(12 * S, 5 * S), 1e-9, "up since 9 s, not yet tried");
        assertEquals(100, s.capacityAt(12 * S), 1e-9);
        assertEquals(100, s.reachableAt(20 * S, 5 * S), 1e-9);
        assertEquals(0, s.reachableAt(31 * S, 5 * S), 1e-9, "the burst");
        assertEquals(80, s.reachableAt(55 * S, 5 * S), 1e-9);
        // 5,400 in all; 6 s and 9 s of two keys' 10 req/s cannot be reached: 300 fewer.
        assertEquals(5100, s.reachableOver(0, 60 * S, Double.NaN, 5 * S), 1);
    }
}
