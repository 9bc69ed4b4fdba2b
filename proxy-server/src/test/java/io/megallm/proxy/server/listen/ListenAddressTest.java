package io.megallm.proxy.server.listen;

import io.megallm.proxy.server.testing.ProxyUnderTest;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.ConnectException;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Audit (2026-12-07): HOST=0.0.0.0 (the default) listened on every IPv6 address too, since a
 * dual-stack socket bound to 0.0.0.0 is bound as ::. An operator who firewalls IPv4 and wrote
 * 0.0.0.0 left the proxy open on IPv6. An IPv4 address now gets an IPv4 socket; :: keeps both.
 */
class ListenAddressTest {

    private static boolean ipv6Loopback() {
        try (ServerSocket s = new ServerSocket()) {
            s.bind(new InetSocketAddress(InetAddress.getByName("::1"), 0));
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    private static void connect(String address, int port) throws IOException {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(InetAddress.getByName(address), port), 5000);
        }
    }

    @Test
    void anIpv4WildcardListensOnIpv4Only() throws Exception {
        assumeTrue(ipv6Loopback(), "no IPv6 loopback on this machine");
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("HOST", "0.0.0.0"))) {
            connect("127.0.0.1", p.port());
            assertThrows(ConnectException.class, () -> connect("::1", p.port()),
                    "HOST=0.0.0.0 must not answer on IPv6");
        }
    }

    @Test
    void theIpv6WildcardListensOnBothFamilies() throws Exception {
        assumeTrue(ipv6Loopback(), "no IPv6 loopback on this machine");
        assumeTrue(InetAddress.getByName("::") instanceof Inet6Address);
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("HOST", "::"))) {
            connect("::1", p.port());
            connect("127.0.0.1", p.port());
        }
    }
}
