package io.megallm.proxy.key;

import java.util.concurrent.TimeUnit;

/**
 * The pool's rules in numbers (contract §3, §7).
 *
 * @param maxCooldownSeconds {@code KEY_COOLDOWN}: the longest rest of a 429'd key without Retry-After
 * @param recheckSeconds     {@code KEY_RECHECK}: wait before a failed key's first trial; 0: no trials
 * @param trialLeaseSeconds  how long a claimed trial may run before another request may claim it
 *                           (a request that vanished without reporting must not keep the key out)
 */
public record KeyPolicy(long maxCooldownSeconds, long recheckSeconds, long trialLeaseSeconds) {

    /** Trials back off by doubling up to a day (contract §7). */
    public static final long MAX_RECHECK_SECONDS = TimeUnit.DAYS.toSeconds(1);

    public static final KeyPolicy DEFAULTS = new KeyPolicy(60, 300, 600);

    public KeyPolicy {
        if (maxCooldownSeconds < 0 || recheckSeconds < 0 || trialLeaseSeconds <= 0) {
            throw new IllegalArgumentException("negative key policy value");
        }
    }
}
