package io.megallm.proxy.server.access;

import io.megallm.proxy.clock.EventClock;
import io.megallm.proxy.http.Exchange;
import io.megallm.proxy.http.ExchangeObserver;
import io.megallm.proxy.http.InboundRequest;
import io.megallm.proxy.http.LogText;
import io.netty.util.concurrent.FastThreadLocal;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;

/**
 * One line per finished request in {@code access.log} (logger {@code megallm.access}). Fields are
 * {@code name=value}, values without spaces, so the line greps and splits. The key is the masked
 * form; the query string is left out because clients put secrets there.
 *
 * <p>Lines are collected per event loop and handed to logback as one event of many lines, at
 * most {@value #FLUSH_MILLIS} ms after the first of them or when {@value #FLUSH_AT} bytes are
 * waiting, as Nginx's {@code access_log ... buffer= flush=} does. Each hand-off wakes logback's
 * writer thread, which on a one-core budget shares the event loop's core, and makes one write per
 * appender: a logback event per request cost as much CPU as the whole relay under load, one per
 * loop iteration still about 1 µs per request. Each line carries its own timestamp, and
 * {@link #flushStopped()} writes what is left once the loops have stopped.
 *
 * <p>A line is built as its UTF-8 bytes ({@link LineBuffer}), and a batch reaches the file and the
 * console as one array ({@link AccessLines}, {@link AccessLineEncoder}). The masked key's {@code …} would
 * otherwise turn every line into a two-byte-per-char string that is widened on the event loop and
 * transcoded again by each appender: about 1 µs per request, 6 % of the proxy's CPU under load.
 * Header values and the path already arrive that way from Netty (one char per received byte), so
 * they are copied as they came; the model and the key are text and are encoded.
 */
public final class AccessLog implements ExchangeObserver {

    private static final Logger log = LoggerFactory.getLogger("megallm.access");
    /** The access line's time, also the console note's ({@link FanOutAppender}). */
    static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSSXXX")
            .withZone(ZoneOffset.UTC);
    static final int FLUSH_AT = 64 * 1024;
    static final long FLUSH_MILLIS = 100;

    // The fixed parts of a line, encoded once: copied as arrays, not char by char.
    private static final byte[] RID = ascii(" rid=");
    private static final byte[] CLIENT = ascii(" client=");
    private static final byte[] XFF = ascii(" xff=");
    private static final byte[] METHOD = ascii(" method=");
    private static final byte[] PATH = ascii(" path=");
    private static final byte[] MODEL = ascii(" model=");
    private static final byte[] STREAM_TRUE = ascii(" stream=true status=");
    private static final byte[] STREAM_FALSE = ascii(" stream=false status=");
    private static final byte[] KEY = ascii(" key=");
    private static final byte[] ATTEMPTS = ascii(" attempts=");
    private static final byte[] TTFB = ascii(" ttfb_ms=");
    private static final byte[] DURATION = ascii(" duration_ms=");
    private static final byte[] BYTES = ascii(" bytes=");
    private static final byte[] END = ascii(" end=");
    private static final byte[] TOKENS = ascii(" tokens=");
    private static final byte[] COMPLETE = ascii("complete");
    private static final byte[] CLIENT_GONE = ascii("client_gone");
    private static final byte[] TRUNCATED = ascii("truncated");
    private static final byte[] SHUTDOWN = ascii("shutdown");

    private static byte[] ascii(String s) {
        return s.getBytes(StandardCharsets.US_ASCII);
    }

    /** Every event loop's batch, for the last flush after the loops have stopped. */
    private final Queue<Batch> all = new ConcurrentLinkedQueue<>();
    private final FastThreadLocal<Batch> batches = new FastThreadLocal<>() {
        @Override
        protected Batch initialValue() {
            Batch b = new Batch();
            all.add(b);
            return b;
        }
    };

    /** The lines of one event loop waiting for their flush. */
    private static final class Batch implements Runnable {
        final LineBuffer lines = new LineBuffer(FLUSH_AT + 1024);
        int count;
        boolean scheduled;
        long stampMillis = -1;
        String stamp;

        String stamp(long millis) {
            if (millis != stampMillis) {
                stampMillis = millis;
                stamp = TIME.format(Instant.ofEpochMilli(millis));
            }
            return stamp;
        }

        /** The timer. */
        @Override
        public void run() {
            scheduled = false;
            write();
        }

        void write() {
            if (lines.length() > 0) {
                // Newlines included: AccessLineEncoder writes the bytes as they are. Straight to
                // the appenders, as Logger.info does after its level check (made per line in
                // onEnd); logback.xml configures no turbo filter that this would pass by.
                byte[] bytes = lines.take();
                int n = count;
                count = 0;
                if (log instanceof ch.qos.logback.classic.Logger logback) {
                    logback.callAppenders(new AccessLines(logback, bytes, n));
                } else {
                    log.info(new String(bytes, StandardCharsets.ISO_8859_1));
                }
            }
        }
    }

    /**
     * Hands the lines still waiting to logback. Only once the event loops have terminated: the
     * batches belong to them until then.
     */
    public void flushStopped() {
        for (Batch b : all) {
            b.write();
        }
    }

    @Override
    public void onEnd(Exchange ex) {
        if (!log.isInfoEnabled()) {
            return;
        }
        Batch batch = batches.get();
        LineBuffer b = batch.lines;
        InboundRequest r = ex.request();
        long durationNanos = EventClock.nanoTime() - r.startNanos();
        long ttfb = ex.timeToHeadNanos();
        b.append(batch.stamp(System.currentTimeMillis())).append(RID);
        // A client's own X-Request-Id is visible ASCII but may hold quotes.
        bytesToken(b, r.requestId(), 128);
        b.append(CLIENT);
        address(b, r);
        b.append(XFF);
        bytesToken(b, r.headers().get("x-forwarded-for"), 200);
        b.append(METHOD).append(r.method().name()).append(PATH);
        bytesToken(b, r.path(), 300);
        b.append(MODEL);
        textToken(b, ex.model(), 100);
        b.append(ex.stream() ? STREAM_TRUE : STREAM_FALSE);
        if (ex.status() == 0) {
            b.append('-');
        } else {
            b.append(ex.status());
        }
        b.append(KEY);
        textToken(b, ex.keyMasked(), 100);
        b.append(ATTEMPTS).append(ex.attempts())
                .append(TTFB);
        millis(b, ttfb);
        b.append(DURATION);
        millis(b, durationNanos);
        b.append(BYTES).append(ex.bytesOut())
                .append(END).append(ending(ex.ending()))
                .append(TOKENS);
        if (ex.hasUsage()) {
            b.append(ex.promptTokens()).append('/').append(ex.completionTokens());
        } else {
            b.append('-');
        }
        b.append('\n');
        batch.count++;
        if (b.length() >= FLUSH_AT) {
            batch.write();
        } else if (!batch.scheduled) {
            batch.scheduled = true;
            ex.eventLoop().schedule(batch, FLUSH_MILLIS, TimeUnit.MILLISECONDS);
        }
    }

    private static byte[] ending(Exchange.Ending e) {
        return switch (e) {
            case COMPLETE -> COMPLETE;
            case CLIENT_GONE -> CLIENT_GONE;
            case TRUNCATED -> TRUNCATED;
            case SHUTDOWN -> SHUTDOWN;
        };
    }

    private static void address(LineBuffer b, InboundRequest r) {
        if (r.clientIp() == null) {
            b.append('-');
            return;
        }
        String ip = r.clientIp();
        if (ip.indexOf(':') >= 0) {
            // An IPv6 address has colons of its own: in brackets, the port is not part of it.
            b.append('[').append(ip).append("]:").append(r.remote().getPort());
            return;
        }
        b.append(ip).append(':').append(r.remote().getPort());
    }

    /** Milliseconds with one decimal, without String.format. */
    private static void millis(LineBuffer b, long nanos) {
        if (nanos < 0) {
            b.append('-');
            return;
        }
        long tenths = (nanos + 50_000) / 100_000;
        b.append(tenths / 10).append('.').append(tenths % 10);
    }

    /**
     * A value whose chars are the bytes received (HTTP header values, the request line), made safe
     * for a space-separated line: no spaces, quotes or control characters, and bytes above 0x7f
     * as {@code %XX}.
     */
    static void bytesToken(LineBuffer b, String v, int max) {
        token(b, v, max, false);
    }

    /** A text value, written as its UTF-8 bytes one per char and made safe like {@link #bytesToken}. */
    static void textToken(LineBuffer b, String v, int max) {
        token(b, v, max, true);
    }

    private static void token(LineBuffer b, String v, int max, boolean text) {
        if (v == null || v.isEmpty()) {
            b.append('-');
            return;
        }
        int n = Math.min(v.length(), max);
        for (int i = 0; i < n; i++) {
            char c = v.charAt(i);
            if (c < 0x80) {
                b.append(safe(c));
            } else if (!text) {
                // A byte above 0x7f as it came would make the line invalid UTF-8 (and 0x9b starts
                // an escape sequence on an 8-bit terminal): written as a URI writes it.
                percent(b, (char) (c & 0xff));
            } else if (LogText.invisible(c)) {
                b.append('_');
            } else if (Character.isHighSurrogate(c) && i + 1 < n && Character.isLowSurrogate(v.charAt(i + 1))) {
                int cp = Character.toCodePoint(c, v.charAt(++i));
                b.append((char) (0xf0 | (cp >> 18))).append((char) (0x80 | ((cp >> 12) & 0x3f)))
                        .append((char) (0x80 | ((cp >> 6) & 0x3f))).append((char) (0x80 | (cp & 0x3f)));
            } else if (Character.isSurrogate(c)) {
                b.append('_');
            } else {
                utf8(b, c);
            }
        }
    }

    private static void percent(LineBuffer b, char c) {
        b.append('%').append((char) HEX[c >> 4]).append((char) HEX[c & 15]);
    }

    private static final byte[] HEX = "0123456789ABCDEF".getBytes(StandardCharsets.US_ASCII);

    private static char safe(char c) {
        return c <= 0x20 || c == 0x7f || c == '"' ? '_' : c;
    }

    /** One char of the Basic Multilingual Plane, not a surrogate, at or above 0x80. */
    private static void utf8(LineBuffer b, char c) {
        if (c < 0x800) {
            b.append((char) (0xc0 | (c >> 6))).append((char) (0x80 | (c & 0x3f)));
        } else {
            b.append((char) (0xe0 | (c >> 12))).append((char) (0x80 | ((c >> 6) & 0x3f)))
                    .append((char) (0x80 | (c & 0x3f)));
        }
    }
}
