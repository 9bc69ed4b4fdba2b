package io.megallm.proxy.relay;

import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatterBuilder;
import java.time.temporal.ChronoField;
import java.util.Locale;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;

/** Parses a {@code Retry-After} value: delta-seconds or an HTTP date. */
public final class RetryAfter {

    private static final DateTimeFormatter[] HTTP_DATES = {
            DateTimeFormatter.RFC_1123_DATE_TIME,
            // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT (two-digit years taken as 19xx/20xx by the base below)
            new DateTimeFormatterBuilder().appendPattern("EEEE, dd-MMM-")
                    .appendValueReduced(ChronoField.YEAR, 2, 2, 1970)
                    .appendPattern(" HH:mm:ss zzz").toFormatter(Locale.US),
            // asctime: Sun Nov  6 08:49:37 1994
            new DateTimeFormatterBuilder().appendPattern("EEE MMM")
                    .appendLiteral(' ').optionalStart().appendLiteral(' ').optionalEnd()
                    .appendPattern("d HH:mm:ss yyyy").toFormatter(Locale.US).withZone(ZoneOffset.UTC),
    };

    private RetryAfter() {
    }

    /**
     * Seconds to wait, or -1 when the value is absent or unreadable (the caller then uses its
     * default). A date in the past gives 0; a number too large for a long gives
     * {@link Long#MAX_VALUE}: an absurd wait is a long wait, which the caller caps, not none.
     */
    public static long seconds(CharSequence value, long nowEpochMillis) {
        if (value == null) {
            return -1;
        }
        String v = value.toString().trim();
        if (v.isEmpty()) {
            return -1;
        }
        // RFC 9110's DIGIT is ASCII only (Character.isDigit would take other scripts' digits too).
        if (v.chars().allMatch(c -> c >= '0' && c <= '9')) {
            try {
                return Long.parseLong(v);
            } catch (NumberFormatException tooBig) {
                return Long.MAX_VALUE;
            }
        }
        for (DateTimeFormatter format : HTTP_DATES) {
            try {
                long at = ZonedDateTime.parse(v, format).toInstant().toEpochMilli();
                long deltaMillis = at - nowEpochMillis;
                return deltaMillis <= 0 ? 0 : (deltaMillis + 999) / 1000;
            } catch (DateTimeParseException notThisForm) {
                // try the next of the three forms RFC 9110 §5.6.7 asks recipients to accept
            }
        }
        return -1;
    }
}
