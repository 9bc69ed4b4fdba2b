package io.megallm.proxy.server.access;

import io.megallm.proxy.http.Exchange;
import io.megallm.proxy.http.ExchangeObserver;
import io.megallm.proxy.http.InboundRequest;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.net.InetSocketAddress;
import java.util.Locale;

/**
 * One line per finished request in {@code access.log} (logger {@code megallm.access}; logback
 * writes it asynchronously). Fields are {@code name=value}, values without spaces, so the line
 * greps and splits. The key is the masked form; the query string is left out because clients
 * put secrets there.
 */
public final class AccessLog implements ExchangeObserver {

    private static final Logger log = LoggerFactory.getLogger("megallm.access");

    @Override
    public void onEnd(Exchange ex) {
        if (!log.isInfoEnabled()) {
            return;
        }
        InboundRequest r = ex.request();
        long durationNanos = System.nanoTime() - r.startNanos();
        long ttfb = ex.timeToHeadNanos();
        String xff = r.headers().get("x-forwarded-for");
        StringBuilder b = new StringBuilder(256)
                .append("rid=").append(r.requestId())
                .append(" client=").append(address(r.remote()))
                .append(" xff=").append(token(xff, 200))
                .append(" method=").append(r.method().name())
                .append(" path=").append(token(r.path(), 300))
                .append(" model=").append(token(ex.model(), 100))
                .append(" stream=").append(ex.stream())
                .append(" status=").append(ex.status() == 0 ? "-" : Integer.toString(ex.status()))
                .append(" key=").append(ex.keyMasked() == null ? "-" : ex.keyMasked())
                .append(" attempts=").append(ex.attempts())
                .append(" ttfb_ms=").append(ttfb < 0 ? "-" : millis(ttfb))
                .append(" duration_ms=").append(millis(durationNanos))
                .append(" bytes=").append(ex.bytesOut())
                .append(" end=").append(ex.ending().name().toLowerCase(Locale.ROOT));
        log.info(b.toString());
    }

    private static String address(InetSocketAddress a) {
        if (a == null) {
            return "-";
        }
        String ip = a.getAddress() != null ? a.getAddress().getHostAddress() : a.getHostString();
        return ip + ":" + a.getPort();
    }

    private static String millis(long nanos) {
        return String.format(Locale.ROOT, "%.1f", nanos / 1e6);
    }

    /** A value made safe for a space-separated line: no spaces, quotes or control characters. */
    static String token(String v, int max) {
        if (v == null || v.isEmpty()) {
            return "-";
        }
        StringBuilder b = new StringBuilder(Math.min(v.length(), max));
        for (int i = 0; i < v.length() && b.length() < max; i++) {
            char c = v.charAt(i);
            b.append(c <= 0x20 || c == 0x7f || c == '"' ? '_' : c);
        }
        return b.toString();
    }
}
