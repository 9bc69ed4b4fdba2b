package io.megallm.proxy.upstream;

import io.netty.channel.ConnectTimeoutException;
import io.netty.handler.proxy.ProxyConnectException;
import org.junit.jupiter.api.Test;

import javax.net.ssl.SSLException;
import javax.net.ssl.SSLHandshakeException;
import java.net.ConnectException;
import java.security.cert.CertificateException;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The failures Netty reports for upstream connections, as real proxies and servers caused them in the egress audit. */
class ConnectFailuresTest {

    private static final String SQUID_407 = "http, basic, /127.0.0.1:3128 => api.example:443, status: 407 Proxy Authentication Required";

    @Test
    void anOutboundProxysRefusalIsNamedEvenUnderTls() {
        // An https base URL: the tunnel's failure comes wrapped in the TLS handler's exception.
        Throwable wrapped = new SSLException("failure when writing TLS control frames", new ProxyConnectException(SQUID_407));
        assertEquals(SQUID_407, ConnectFailures.describe(wrapped));
        assertEquals(SQUID_407, ConnectFailures.describe(new ProxyConnectException(SQUID_407)));
        assertTrue(ConnectFailures.permanent(wrapped));
    }

    @Test
    void refusalsNoRetryCanChangeArePermanentAndTheRestAreNot() {
        assertTrue(ConnectFailures.permanent(new ProxyConnectException("socks5, password, /127.0.0.1:1080 => a:443, authStatus: FAILURE(1)")));
        assertTrue(ConnectFailures.permanent(new ProxyConnectException("socks5, none, /127.0.0.1:1080 => a:443, status: FORBIDDEN(2)")));
        assertTrue(ConnectFailures.permanent(new ProxyConnectException("http, none, /127.0.0.1:3128 => a:443, status: 403 Forbidden")));
        SSLHandshakeException pkix = new SSLHandshakeException("PKIX path building failed");
        pkix.initCause(new CertificateException("unable to find valid certification path to requested target"));
        assertTrue(ConnectFailures.permanent(pkix));
        assertEquals("TLS: unable to find valid certification path to requested target", ConnectFailures.describe(pkix));

        // A target that is down behind the proxy, a reset during the handshake, a refused or slow connect: they may pass.
        assertFalse(ConnectFailures.permanent(new ProxyConnectException("http, none, /127.0.0.1:3128 => a:443, status: 503 Service Unavailable")));
        assertFalse(ConnectFailures.permanent(new SSLHandshakeException("Remote host terminated the handshake")));
        assertFalse(ConnectFailures.permanent(new ConnectException("Connection refused")));
        assertFalse(ConnectFailures.permanent(new ConnectTimeoutException("connection timed out: /10.0.0.1:443")));
        assertFalse(ConnectFailures.permanent(null));
    }

    /**
     * An HTTP proxy's 429 or 408 to CONNECT says "later", not "never": README names the refusals
     * that fail at once (407, 403 to CONNECT); a rate-limited proxy's 429 gave the client a 502
     * with x-should-retry: false and no retry.
     */
    @Test
    void aProxysTooManyRequestsOrRequestTimeoutIsNoRefusal() {
        assertFalse(ConnectFailures.permanent(new ProxyConnectException(
                "http, basic, /127.0.0.1:3128 => a:443, status: 429 Too Many Requests")));
        assertFalse(ConnectFailures.permanent(new SSLException("failure when writing TLS control frames",
                new ProxyConnectException("http, none, /127.0.0.1:3128 => a:443, status: 408 Request Timeout"))));
        assertTrue(ConnectFailures.permanent(new ProxyConnectException(
                "http, none, /127.0.0.1:3128 => a:443, status: 405 Method Not Allowed")));
    }

    @Test
    void aDescriptionIsOnePrintableLine() {
        assertEquals("no answer head within MEGALLM_TIMEOUT", ConnectFailures.describe(null));
        assertEquals("connection timed out", ConnectFailures.describe(new ConnectTimeoutException("x")));
        assertEquals("a b", ConnectFailures.describe(new ConnectException("a\nb")));
        assertEquals("ConnectException", ConnectFailures.describe(new ConnectException()));
        assertEquals(300, ConnectFailures.describe(new ConnectException("x".repeat(1000))).length());
        // A chain of causes that loops is read to a bound, not forever.
        Exception a = new Exception("a");
        Exception b = new Exception("b", a);
        a.initCause(b);
        assertFalse(ConnectFailures.permanent(a));
        assertEquals("a", ConnectFailures.describe(a));
    }
}
