package io.megallm.proxy.server.access;

import io.megallm.proxy.http.Exchange;
import io.megallm.proxy.http.ExchangeObserver;
import io.megallm.proxy.http.InboundRequest;
import io.netty.util.concurrent.FastThreadLocal;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.net.InetSocketAddress;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;

/**
 * One line per finished request in {@code access.log} (logger {@code megallm.access}). Fields are
 * {@code name=value}, values without spaces, so the line greps and splits. The key is the masked
 * form; the query string is left out because clients put secrets there.
 *
 * <p>Lines are collected per event loop and handed to logback once per loop iteration, as one
 * event of several lines: a logback event per request (a queue hand-off and a thread wake-up
 * each) cost as much CPU as the whole relay under load. Each line carries its own timestamp.
 */
public final class AccessLog implements ExchangeObserver {

    private static final Logger log = LoggerFactory.getLogger("megallm.access");
    private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSSXXX")
            .withZone(ZoneOffset.UTC);
    private static final int FLUSH_AT = 32 * 1024;

    private final FastThreadLocal<Batch> batches = new FastThreadLocal<>() {
        @Override
        protected Batch initialValue() {
            return new Batch();
        }
    };

    /** The lines of one event loop waiting for the end of its current iteration. */
    private static final class Batch implements Runnable {
        final StringBuilder lines = new StringBuilder(4096);
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

        @Override
        public void run() {
            scheduled = false;
            if (lines.length() > 0) {
                lines.setLength(lines.length() - 1);
                log.info(lines.toString());
                lines.setLength(0);
            }
        }
    }

    @Override
    public void onEnd(Exchange ex) {
        if (!log.isInfoEnabled()) {
            return;
        }
        Batch batch = batches.get();
        StringBuilder b = batch.lines;
        InboundRequest r = ex.request();
        long durationNanos = System.nanoTime() - r.startNanos();
        long ttfb = ex.timeToHeadNanos();
        b.append(batch.stamp(System.currentTimeMillis()))
                .append(" rid=").append(r.requestId())
                .append(" client=");
        address(b, r.remote());
        b.append(" xff=");
        token(b, r.headers().get("x-forwarded-for"), 200);
        b.append(" method=").append(r.method().name()).append(" path=");
        token(b, r.path(), 300);
        b.append(" model=");
        token(b, ex.model(), 100);
        b.append(" stream=").append(ex.stream()).append(" status=");
        if (ex.status() == 0) {
            b.append('-');
        } else {
            b.append(ex.status());
        }
        b.append(" key=").append(ex.keyMasked() == null ? "-" : ex.keyMasked())
                .append(" attempts=").append(ex.attempts())
                .append(" ttfb_ms=");
        millis(b, ttfb);
        b.append(" duration_ms=");
        millis(b, durationNanos);
        b.append(" bytes=").append(ex.bytesOut())
                .append(" end=").append(ending(ex.ending()))
                .append('\n');
        if (b.length() >= FLUSH_AT) {
            batch.run();
        } else if (!batch.scheduled) {
            batch.scheduled = true;
            ex.eventLoop().execute(batch);
        }
    }

    private static String ending(Exchange.Ending e) {
        return switch (e) {
            case COMPLETE -> "complete";
            case CLIENT_GONE -> "client_gone";
            case TRUNCATED -> "truncated";
        };
    }

    private static void address(StringBuilder b, InetSocketAddress a) {
        if (a == null) {
            b.append('-');
            return;
        }
        b.append(a.getAddress() != null ? a.getAddress().getHostAddress() : a.getHostString())
                .append(':').append(a.getPort());
    }

    /** Milliseconds with one decimal, without String.format. */
    private static void millis(StringBuilder b, long nanos) {
        if (nanos < 0) {
            b.append('-');
            return;
        }
        long tenths = (nanos + 50_000) / 100_000;
        b.append(tenths / 10).append('.').append(tenths % 10);
    }

    /** A value made safe for a space-separated line: no spaces, quotes or control characters. */
    static void token(StringBuilder b, String v, int max) {
        if (v == null || v.isEmpty()) {
            b.append('-');
            return;
        }
        int n = Math.min(v.length(), max);
        for (int i = 0; i < n; i++) {
            char c = v.charAt(i);
            b.append(c <= 0x20 || c == 0x7f || c == '"' ? '_' : c);
        }
    }
}
