package io.megallm.proxy.upstream;

import io.netty.handler.codec.http.HttpResponse;

import java.util.Locale;

/**
 * What a forwarding HTTP proxy's own answer says (contract §15: a proxy that fails is a connect
 * failure). Its 5xx cannot be told from the upstream's in general, but one that names a failure
 * to reach the upstream can: squid's {@code X-Squid-Error} and RFC 9209's {@code Proxy-Status}.
 * Through CONNECT the same proxy's 503 was a connect failure that moved the request to the next
 * base URL; forwarded, it was taken for the upstream's 5xx and the backup URL was never used.
 */
public final class ProxyAnswers {

    /** Squid's error names for a request it could not send on: no connection, no address, no route. */
    private static final String[] SQUID = {"ERR_CONNECT_FAIL", "ERR_DNS_FAIL", "ERR_CANNOT_FORWARD"};
    /** RFC 9209 error types of the connect phase: the request never reached the upstream. */
    private static final String[] PROXY_STATUS = {"dns_timeout", "dns_error", "destination_not_found",
            "destination_unavailable", "destination_ip_unroutable", "connection_refused", "connection_timeout"};

    private ProxyAnswers() {
    }

    /** The proxy says it could not reach the upstream: nothing of the request was sent on. */
    public static boolean cannotConnect(HttpResponse head) {
        if (head.status().code() < 500) {
            return false;
        }
        String squid = head.headers().get("X-Squid-Error");
        if (squid != null) {
            for (String name : SQUID) {
                if (squid.startsWith(name)) {
                    return true;
                }
            }
        }
        String status = head.headers().get("Proxy-Status");
        if (status != null) {
            String s = status.toLowerCase(Locale.ROOT);
            for (String type : PROXY_STATUS) {
                if (s.contains("error=" + type) || s.contains("error=\"" + type + "\"")) {
                    return true;
                }
            }
        }
        return false;
    }
}
