package io.megallm.proxy.relay;

import io.netty.util.AsciiString;
import org.junit.jupiter.api.Test;

import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;

import static org.junit.jupiter.api.Assertions.assertEquals;

class RetryAfterTest {

    /** A fixed "now": Wed, 21 Oct 2015 07:28:00 GMT. */
    private static final long NOW = Instant.parse("2015-10-21T07:28:00Z").toEpochMilli();

    private static String httpDate(long epochMillis) {
        return DateTimeFormatter.RFC_1123_DATE_TIME.format(Instant.ofEpochMilli(epochMillis).atOffset(ZoneOffset.UTC));
    }

    @Test
    void deltaSeconds() {
        assertEquals(120, RetryAfter.seconds("120", NOW));
        assertEquals(0, RetryAfter.seconds("0", NOW));
        assertEquals(7, RetryAfter.seconds(" 7 ", NOW));
        assertEquals(120, RetryAfter.seconds(AsciiString.of("120"), NOW));
    }

    @Test
    void httpDateInTheFuture() {
        assertEquals(30, RetryAfter.seconds("Wed, 21 Oct 2015 07:28:30 GMT", NOW));
        assertEquals(30, RetryAfter.seconds(httpDate(NOW + 30_000), NOW));
        assertEquals(3600, RetryAfter.seconds(httpDate(NOW + 3_600_000), NOW));
    }

    @Test
    void httpDatePartOfASecondAwayRoundsUp() {
        assertEquals(30, RetryAfter.seconds("Wed, 21 Oct 2015 07:28:30 GMT", NOW + 500));
        assertEquals(1, RetryAfter.seconds("Wed, 21 Oct 2015 07:28:01 GMT", NOW + 999));
    }

    @Test
    void httpDateInThePastOrNowIsZero() {
        assertEquals(0, RetryAfter.seconds("Wed, 21 Oct 2015 07:27:00 GMT", NOW));
        assertEquals(0, RetryAfter.seconds("Wed, 21 Oct 2015 07:28:00 GMT", NOW));
        assertEquals(0, RetryAfter.seconds("Sun, 06 Nov 1994 08:49:37 GMT", NOW));
    }

    @Test
    void obsoleteHttpDateForms() {
        assertEquals(30, RetryAfter.seconds("Wednesday, 21-Oct-15 07:28:30 GMT", NOW));
        assertEquals(30, RetryAfter.seconds("Wed Oct 21 07:28:30 2015", NOW));
    }

    @Test
    void garbageIsMinusOne() {
        assertEquals(-1, RetryAfter.seconds("soon", NOW));
        assertEquals(-1, RetryAfter.seconds("-5", NOW));
        assertEquals(-1, RetryAfter.seconds("1.5", NOW));
        assertEquals(-1, RetryAfter.seconds("12abc", NOW));
        assertEquals(-1, RetryAfter.seconds("2015-10-21T07:28:30Z", NOW));
        assertEquals(-1, RetryAfter.seconds("Wed, 32 Oct 2015 07:28:30 GMT", NOW));
    }

    /** An absurd wait is a long wait, not no wait at all: the caller caps it (KeyLifecycle). */
    @Test
    void overflowingNumberSaturates() {
        assertEquals(Long.MAX_VALUE, RetryAfter.seconds("99999999999999999999999", NOW));
        assertEquals(Long.MAX_VALUE, RetryAfter.seconds("9223372036854775808", NOW));
        assertEquals(Long.MAX_VALUE - 1, RetryAfter.seconds("9223372036854775806", NOW));
        assertEquals(2147483648L, RetryAfter.seconds("2147483648", NOW));
    }

    @Test
    void onlyAsciiDigitsAreDeltaSeconds() {
        // RFC 9110's DIGIT is ASCII; Java's isDigit also takes other scripts' digits.
        assertEquals(-1, RetryAfter.seconds("\u0661\u0662\u0660", NOW));
    }

    @Test
    void absentOrEmptyIsMinusOne() {
        assertEquals(-1, RetryAfter.seconds(null, NOW));
        assertEquals(-1, RetryAfter.seconds("", NOW));
        assertEquals(-1, RetryAfter.seconds("   ", NOW));
    }
}
