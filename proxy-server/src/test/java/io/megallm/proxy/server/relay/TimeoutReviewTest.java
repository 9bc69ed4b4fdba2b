package io.megallm.proxy.server.relay;

import io.megallm.proxy.server.testing.ProxyUnderTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.http.HttpResponse;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** White-box review of the upstream-side timeouts (contract §3 MEGALLM_TIMEOUT, §9: upstream timeout 504). */
class TimeoutReviewTest {

    /**
     * README: "Opening a connection (socket, connect, TLS handshake) has its own MEGALLM_TIMEOUT
     * timer: past it, 504 like any connect timeout." An https upstream whose kernel takes the
     * connection but that never answers the ClientHello (a listening socket nobody accepts on)
     * must be waited for MEGALLM_TIMEOUT and answered 504, not cut by a timer of Netty's own
     * (SslHandler's 10 s handshake default) and reported as unreachable.
     */
    @Test
    @Timeout(60)
    void aTlsHandshakeThatNeverCompletesIsAnUpstreamTimeoutAfterMegallmTimeout() throws Exception {
        try (ServerSocket silent = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
             ProxyUnderTest p = ProxyUnderTest.start(1, Map.of(
                     "MEGALLM_BASE_URL", "https://localhost:" + silent.getLocalPort() + "/v1",
                     // Above the 10 s SslHandler default: the timer under test must be ours.
                     "MEGALLM_TIMEOUT", "11", "MEGALLM_MAX_RETRIES", "0", "MAX_KEY_RETRIES", "0"))) {
            HttpResponse<String> r = p.chat();
            assertEquals(504, r.statusCode(), r.body());
            assertTrue(r.body().contains("\"code\":\"upstream_timeout\""), r.body());
        }
    }
}
