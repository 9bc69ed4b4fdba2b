package io.megallm.proxy.relay;

import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;

/** Parses a {@code Retry-After} value: delta-seconds or an HTTP date. */
public final class RetryAfter {

    private RetryAfter() {
    }

    /**
     * Seconds to wait, or -1 when the value is absent or unreadable (the caller then uses its
     * default). A date in the past gives 0.
     */
    public static long seconds(CharSequence value, long nowEpochMillis) {
        if (value == null) {
            return -1;
        }
        String v = value.toString().trim();
        if (v.isEmpty()) {
            return -1;
        }
        if (v.chars().allMatch(Character::isDigit)) {
            try {
                return Long.parseLong(v);
            } catch (NumberFormatException tooBig) {
                return -1;
            }
        }
        try {
            long at = ZonedDateTime.parse(v, DateTimeFormatter.RFC_1123_DATE_TIME).toInstant().toEpochMilli();
            long deltaMillis = at - nowEpochMillis;
            return deltaMillis <= 0 ? 0 : (deltaMillis + 999) / 1000;
        } catch (DateTimeParseException notADate) {
            return -1;
        }
    }
}
