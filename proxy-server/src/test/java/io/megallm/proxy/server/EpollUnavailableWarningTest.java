package io.megallm.proxy.server;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The start's one warning when Linux fell back to NIO because epoll could not be loaded (a
 * read-only root filesystem, /tmp mounted noexec): with its reason and the fix; never for a
 * deliberate -Dmegallm.proxy.forceNio, epoll in use, or another system.
 */
class EpollUnavailableWarningTest {

    private static final Throwable NOEXEC = new UnsatisfiedLinkError(
            "could not load a native library: netty_transport_native_epoll_x86_64\n\tSuppressed: java.lang.UnsatisfiedLinkError:"
                    + " /tmp/libnetty_transport_native_epoll_x86_641234.so: failed to map segment from shared object");

    @Test
    void linuxWithoutEpollWarnsWithTheFirstLineOfTheReasonAndTheFix() {
        String w = ProxyServer.epollUnavailableWarning("Linux", false, "nio", NOEXEC);
        assertTrue(w.contains("java.lang.UnsatisfiedLinkError: could not load a native library:"
                + " netty_transport_native_epoll_x86_64."), w);
        assertTrue(!w.contains("\n") && !w.contains("Suppressed"), "first line only: " + w);
        assertTrue(w.contains("TCP_NOTSENT_LOWAT"), w);
        assertTrue(w.contains("mount /tmp with exec, or set -Dio.netty.native.workdir to a writable exec directory"), w);
    }

    @Test
    void aDeliberateNioIsNoFailure() {
        assertNull(ProxyServer.epollUnavailableWarning("Linux", true, "nio", NOEXEC));
    }

    @Test
    void epollInUseOrAnotherSystemSaysNothing() {
        assertNull(ProxyServer.epollUnavailableWarning("Linux", false, "epoll", null));
        assertNull(ProxyServer.epollUnavailableWarning("Linux", false, "nio", null));
        assertNull(ProxyServer.epollUnavailableWarning("Mac OS X", false, "nio",
                new UnsupportedOperationException("Only supported on Linux")));
        assertNull(ProxyServer.epollUnavailableWarning("Windows 11", false, "nio",
                new UnsupportedOperationException("Only supported on Linux")));
    }

    @Test
    void aReasonWithoutAMessageIsNamedByItsClass() {
        String w = ProxyServer.epollUnavailableWarning("linux", false, "nio", new IllegalStateException());
        assertEquals(1, w.lines().count());
        assertTrue(w.contains("): java.lang.IllegalStateException. Netty"), w);
    }
}
