package io.megallm.proxy.server.relay;

import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;

import java.net.http.HttpResponse;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Contract §15, DEFAULT_MODEL: added when the body names no model, and only then. */
class DefaultModelTest {

    private static final Map<String, String> ENV = Map.of("DEFAULT_MODEL", "gpt-4o-mini");

    private static String sentUpstream(ProxyUnderTest p, String path, String body) throws Exception {
        p.upstream.otherwise(MockUpstream.json(200, "{}"));
        HttpResponse<String> r = p.post(path, body);
        assertEquals(200, r.statusCode(), r.body());
        return p.upstream.take().bodyText();
    }

    @Test
    void aChatWithoutAModelGetsTheDefaultAsItsFirstField() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, ENV)) {
            assertEquals("{\"model\":\"gpt-4o-mini\", \"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                    sentUpstream(p, "/v1/chat/completions", "{ \"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"));
        }
    }

    @Test
    void completionsAndEmbeddingsToo() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, ENV)) {
            assertEquals("{\"model\":\"gpt-4o-mini\",\"prompt\":\"x\"}", sentUpstream(p, "/v1/completions", "{\"prompt\":\"x\"}"));
            assertEquals("{\"model\":\"gpt-4o-mini\"}", sentUpstream(p, "/v1/embeddings?x=1", "{}"));
        }
    }

    @Test
    void aBodyThatNamesAModelGoesOutByteForByte() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, ENV)) {
            String body = "{\"messages\":[],  \"model\" : \"other\"}";
            assertEquals(body, sentUpstream(p, "/v1/chat/completions", body));
            // A model that is not a string is the client's business: no second "model" field.
            String odd = "{\"model\":null,\"messages\":[]}";
            assertEquals(odd, sentUpstream(p, "/v1/chat/completions", odd));
        }
    }

    @Test
    void otherEndpointsAndNonObjectsAreLeftAlone() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, ENV)) {
            assertEquals("{\"input\":\"x\"}", sentUpstream(p, "/v1/moderations", "{\"input\":\"x\"}"));
            assertEquals("[1,2]", sentUpstream(p, "/v1/chat/completions", "[1,2]"));
        }
    }

    @Test
    void unsetMeansNoRewrite() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            assertEquals("{\"messages\":[]}", sentUpstream(p, "/v1/chat/completions", "{\"messages\":[]}"));
        }
    }
}
