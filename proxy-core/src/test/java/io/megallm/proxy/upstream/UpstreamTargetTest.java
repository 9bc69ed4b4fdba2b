package io.megallm.proxy.upstream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class UpstreamTargetTest {

    @Test
    void httpsDefaultsToPort443AndHostHeaderHasNoPort() {
        UpstreamTarget t = UpstreamTarget.parse("https://ai.megallm.io/v1");

        assertTrue(t.tls());
        assertEquals("ai.megallm.io", t.host());
        assertEquals(443, t.port());
        assertEquals("ai.megallm.io", t.hostHeader());
        assertEquals("/v1/chat/completions", t.pathFor("/chat/completions"));
        assertEquals("https://ai.megallm.io/v1", t.toString());
    }

    @Test
    void explicitDefaultPortIsLeftOutOfTheHostHeader() {
        assertEquals("ai.megallm.io", UpstreamTarget.parse("https://ai.megallm.io:443/v1").hostHeader());
        assertEquals("example.com", UpstreamTarget.parse("http://example.com:80").hostHeader());
    }

    @Test
    void httpWithPort() {
        UpstreamTarget t = UpstreamTarget.parse("http://localhost:8080/v1");

        assertFalse(t.tls());
        assertEquals("localhost", t.host());
        assertEquals(8080, t.port());
        assertEquals("localhost:8080", t.hostHeader());
        assertEquals("http://localhost:8080/v1", t.toString());
    }

    @Test
    void httpDefaultsToPort80() {
        UpstreamTarget t = UpstreamTarget.parse("http://mock.internal/api");

        assertEquals(80, t.port());
        assertEquals("mock.internal", t.hostHeader());
    }

    @Test
    void httpsWithOtherPortKeepsItInTheHostHeader() {
        UpstreamTarget t = UpstreamTarget.parse("https://ai.megallm.io:8443/v1");

        assertEquals(8443, t.port());
        assertEquals("ai.megallm.io:8443", t.hostHeader());
    }

    @Test
    void schemeIsCaseInsensitive() {
        UpstreamTarget t = UpstreamTarget.parse("HTTPS://ai.megallm.io/v1");

        assertTrue(t.tls());
        assertEquals(443, t.port());
    }

    @Test
    void surroundingWhiteSpaceIsIgnored() {
        assertEquals("ai.megallm.io", UpstreamTarget.parse("  https://ai.megallm.io/v1 \n").host());
    }

    @Test
    void trailingSlashesAreStripped() {
        assertEquals("/v1/models", UpstreamTarget.parse("https://ai.megallm.io/v1/").pathFor("/models"));
        assertEquals("/v1/models", UpstreamTarget.parse("https://ai.megallm.io/v1//").pathFor("/models"));
        assertEquals("https://ai.megallm.io/v1", UpstreamTarget.parse("https://ai.megallm.io/v1/").toString());
    }

    @Test
    void noPathMeansEmptyBasePath() {
        assertEquals("/chat/completions", UpstreamTarget.parse("http://127.0.0.1:9000").pathFor("/chat/completions"));
        assertEquals("/chat/completions", UpstreamTarget.parse("http://127.0.0.1:9000/").pathFor("/chat/completions"));
    }

    @Test
    void pathForKeepsTheQueryString() {
        UpstreamTarget t = UpstreamTarget.parse("https://ai.megallm.io/openai/v1");

        assertEquals("/openai/v1/models?limit=5&after=x", t.pathFor("/models?limit=5&after=x"));
        assertEquals("/openai/v1", t.pathFor(""));
    }

    @Test
    void ipv6Literal() {
        UpstreamTarget t = UpstreamTarget.parse("http://[::1]:9000/v1");

        assertEquals("::1", t.host());
        assertEquals(9000, t.port());
        assertEquals("[::1]:9000", t.hostHeader());

        assertEquals("[2001:db8::1]", UpstreamTarget.parse("https://[2001:db8::1]/v1").hostHeader());
    }

    @ParameterizedTest
    @ValueSource(strings = {
            "ftp://ai.megallm.io/v1",
            "ws://ai.megallm.io/v1",
            "file:///etc/passwd",
            "ai.megallm.io/v1",
            "//ai.megallm.io/v1",
    })
    void rejectsOtherSchemes(String url) {
        assertThrows(IllegalArgumentException.class, () -> UpstreamTarget.parse(url));
    }

    @ParameterizedTest
    @ValueSource(strings = {"https:///v1", "http://", "https://:443/v1", "http:/v1"})
    void rejectsMissingHost(String url) {
        assertThrows(IllegalArgumentException.class, () -> UpstreamTarget.parse(url));
    }

    @ParameterizedTest
    @ValueSource(strings = {
            "https://ai.megallm.io/v1?key=secret",
            "https://ai.megallm.io/v1?",
            "https://ai.megallm.io/v1#frag",
            "https://user:pass@ai.megallm.io/v1",
    })
    void rejectsQueryFragmentAndUserInfo(String url) {
        assertThrows(IllegalArgumentException.class, () -> UpstreamTarget.parse(url));
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "   ", "garbage", "not a url", "http://exa mple.com/", "https://ai.megallm.io/v 1",
            "::::", "%%%", "http://[::1/v1"})
    void rejectsGarbage(String url) {
        assertThrows(IllegalArgumentException.class, () -> UpstreamTarget.parse(url));
    }

    @ParameterizedTest
    @ValueSource(strings = {"http://host:65536/v1", "http://host:99999/v1", "https://host:0/v1"})
    void rejectsPortOutOfRange(String url) {
        assertThrows(IllegalArgumentException.class, () -> UpstreamTarget.parse(url));
    }

    @Test
    void highestPortIsAccepted() {
        assertEquals(65535, UpstreamTarget.parse("http://host:65535/v1").port());
        assertEquals(1, UpstreamTarget.parse("http://host:1/v1").port());
    }

    @Test
    void rejectionMessageDoesNotEchoTheUrl() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> UpstreamTarget.parse("https://ai.megallm.io/v1?key=sk-secret-value"));

        assertFalse(e.getMessage().contains("sk-secret-value"), e.getMessage());
    }

    @Test
    void acceptsAComposeServiceNameWithAnUnderscore() {
        UpstreamTarget t = UpstreamTarget.parse("http://mock_upstream:8080/v1/");
        assertEquals("mock_upstream", t.host());
        assertEquals(8080, t.port());
        assertEquals("mock_upstream:8080", t.hostHeader());
        assertEquals("/v1/chat/completions", t.pathFor("/chat/completions"));
        assertEquals(80, UpstreamTarget.parse("http://mock_upstream/v1").port());
    }
}
