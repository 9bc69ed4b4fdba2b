package io.megallm.proxy.upstream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Contract §15: proxy URLs as httpx reads them, and NO_PROXY as curl and httpx match it. */
class EgressProxyTest {

    @Test
    void httpProxyWithCredentialsIsMaskedInItsTextForm() {
        EgressProxy p = EgressProxy.parse("http://alice:s%40cret@proxy.corp:3128");
        assertEquals(EgressProxy.Kind.HTTP, p.kind());
        assertEquals("proxy.corp", p.host());
        assertEquals(3128, p.port());
        assertEquals("alice", p.user());
        assertEquals("s@cret", p.password());
        assertEquals("http://alice:***@proxy.corp:3128", p.toString());
        assertTrue(p.resolvesRemotely());
    }

    @Test
    void socksKindsAndDefaultPorts() {
        EgressProxy s = EgressProxy.parse("socks5://127.0.0.1");
        assertEquals(EgressProxy.Kind.SOCKS5, s.kind());
        assertEquals(1080, s.port());
        assertFalse(s.resolvesRemotely());
        assertNull(s.user());
        EgressProxy h = EgressProxy.parse("SOCKS5H://[::1]:9050");
        assertEquals(EgressProxy.Kind.SOCKS5H, h.kind());
        assertEquals("::1", h.host());
        assertEquals("socks5h://[::1]:9050", h.toString());
        assertEquals(80, EgressProxy.parse("proxy.corp").port(), "no scheme: http, as curl reads it");
    }

    @ParameterizedTest
    @ValueSource(strings = {"ftp://proxy:21", "https://proxy:443", "http://", "http://user:pw@:80", "socks4://p:1080",
            "http://user:pw@127.0.0.1:99999", "http://user:pw@127.0.0.1:0", "http://user:pw@proxy:notaport"})
    void badProxyUrlsAreRefusedWithoutShowingThePassword(String url) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> EgressProxy.parse(url));
        assertFalse(e.getMessage().contains("pw"), e.getMessage());
        if (url.contains("99999") || url.endsWith(":0")) {
            assertTrue(e.getMessage().contains("port is out of range"), e.getMessage());
        }
        if (url.contains("notaport")) {
            assertTrue(e.getMessage().contains("host or port is not valid"), e.getMessage());
        }
    }

    @Test
    void noProxyMatchesNamesSuffixesIpsAndStar() {
        NoProxy n = NoProxy.parse(" localhost, .internal.corp ,example.com,10.0.0.7,[::1], *.wild.io");
        assertTrue(n.bypasses("localhost"));
        assertTrue(n.bypasses("api.internal.corp"));
        assertTrue(n.bypasses("internal.corp"));
        assertTrue(n.bypasses("EXAMPLE.com"));
        assertTrue(n.bypasses("ai.example.com"));
        assertFalse(n.bypasses("notexample.com"), "a suffix matches at a dot only");
        assertTrue(n.bypasses("10.0.0.7"));
        assertFalse(n.bypasses("10.0.0.70"));
        assertTrue(n.bypasses("::1"));
        assertTrue(n.bypasses("a.wild.io"));
        assertFalse(n.bypasses("ai.megallm.io"));
        assertTrue(NoProxy.parse("*").bypasses("ai.megallm.io"));
        assertFalse(NoProxy.parse(null).bypasses("ai.megallm.io"));
        assertFalse(NoProxy.parse("").bypasses("ai.megallm.io"));
    }

    @Test
    void noProxyEntriesWithAPortOrASchemeCoverThatPortOrSchemeOnlyAsHttpxReadsThem() {
        // Before, the port was dropped (127.0.0.1:9999 exempted every port of the host) and an
        // entry with a scheme matched nothing.
        NoProxy n = NoProxy.parse("127.0.0.1:9999, http://localhost, https://secure.corp:8443, [::1]:8080, bad.host:port");
        assertTrue(n.bypasses("127.0.0.1", 9999, false));
        assertFalse(n.bypasses("127.0.0.1", 21101, false), "another port of the host goes through the proxy");
        assertTrue(n.bypasses("localhost", 80, false));
        assertTrue(n.bypasses("localhost", 9000, false));
        assertFalse(n.bypasses("localhost", 443, true), "http://localhost covers plain http only");
        assertTrue(n.bypasses("secure.corp", 8443, true));
        assertFalse(n.bypasses("secure.corp", 8443, false));
        assertFalse(n.bypasses("secure.corp", 443, true));
        assertTrue(n.bypasses("::1", 8080, false));
        assertFalse(n.bypasses("::1", 8081, false));
        assertFalse(n.bypasses("bad.host", 80, false), "an entry whose port is not one covers nothing");
        assertTrue(NoProxy.parse("example.com").bypasses("api.example.com", 443, true), "no port: every port");
    }
}
