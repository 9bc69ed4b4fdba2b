package io.megallm.proxy.upstream;

import io.netty.channel.ConnectTimeoutException;
import io.netty.handler.proxy.ProxyConnectException;

import javax.net.ssl.SSLHandshakeException;
import java.security.cert.CertificateException;
import java.util.Locale;

/**
 * What a failed upstream connection says: a line for app.log, and whether trying again can
 * help. A refused connection or a timeout may pass; an outbound proxy that refuses our
 * credentials or the tunnel, or an upstream certificate that does not check out, answers the
 * same to every retry and every key (no key has been sent yet), so retrying only hammers the
 * proxy (an account behind Active Directory gets locked out) and delays the client's 502.
 */
public final class ConnectFailures {

    /** Causes looked at, at most: a chain that loops must not hold an event loop. */
    private static final int DEPTH = 16;

    private ConnectFailures() {
    }

    /** True when the same connection will fail the same way on every retry and with every key. */
    public static boolean permanent(Throwable cause) {
        Throwable t = cause;
        for (int depth = 0; t != null && depth < DEPTH; t = t.getCause(), depth++) {
            if (t instanceof CertificateException) {
                return true;
            }
            if (t instanceof ProxyConnectException && t.getMessage() != null) {
                String m = t.getMessage().toLowerCase(Locale.ROOT);
                // Netty's words: an HTTP proxy's "status: 407 …" or "status: 403 …"; a SOCKS5
                // proxy's "authStatus: FAILURE", "status: FORBIDDEN(2)", "unexpected authMethod".
                // A 429 or 408 says "later", not "never": the retries may pass.
                boolean later = m.contains("status: 429") || m.contains("status: 408");
                if ((m.contains("status: 4") && !later) || m.contains("authstatus") || m.contains("forbidden")
                        || m.contains("authmethod")) {
                    return true;
                }
            }
            if (t instanceof SSLHandshakeException && t.getMessage() != null
                    && (t.getMessage().contains("PKIX") || t.getMessage().contains("No subject alternative")
                    || t.getMessage().contains("certificate"))) {
                return true;
            }
        }
        return false;
    }

    /** One printable line saying why, without stack or class names where a message says it. */
    public static String describe(Throwable cause) {
        if (cause == null) {
            return "no answer head within MEGALLM_TIMEOUT";
        }
        if (cause instanceof ConnectTimeoutException) {
            return "connection timed out";
        }
        // Below TLS an outbound proxy's refusal arrives wrapped in an SSL exception ("failure when
        // writing TLS control frames"): the proxy's words say more, wherever they are in the chain.
        Throwable deepest = cause;
        Throwable proxy = null;
        boolean tls = false;
        Throwable t = cause;
        for (int depth = 0; t != null && depth < DEPTH; t = t.getCause(), depth++) {
            deepest = t;
            if (proxy == null && t instanceof ProxyConnectException) {
                proxy = t;
            }
            tls |= t instanceof SSLHandshakeException;
        }
        String m = cause.getMessage();
        if (proxy != null && proxy.getMessage() != null) {
            m = proxy.getMessage();
        } else if (tls && deepest.getMessage() != null) {
            m = "TLS: " + deepest.getMessage();
        }
        if (m == null || m.isBlank()) {
            m = cause.getClass().getSimpleName();
        }
        StringBuilder b = new StringBuilder(Math.min(m.length(), 300));
        for (int i = 0; i < m.length() && b.length() < 300; i++) {
            char c = m.charAt(i);
            b.append(c < 0x20 || c == 0x7f ? ' ' : c);
        }
        return b.toString();
    }
}
