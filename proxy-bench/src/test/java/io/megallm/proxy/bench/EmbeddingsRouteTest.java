package io.megallm.proxy.bench;

import io.megallm.proxy.bench.harness.LargeAnswerClient;
import io.megallm.proxy.bench.harness.MockStats;
import io.megallm.proxy.bench.harness.Requests;
import io.netty.buffer.ByteBuf;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * {@code POST /v1/embeddings} of the mock over a real socket: the size asked for, within its
 * bounds, and the large-answer scenario's client reading whole answers on one connection.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class EmbeddingsRouteTest {

    private MockUpstreamServer mock;
    private HttpClient http;

    @BeforeEach
    void start() throws InterruptedException {
        mock = new MockUpstreamServer(20, 50).start("127.0.0.1", 0, 1);
        http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    }

    @AfterEach
    void stop() {
        if (mock != null) {
            mock.stop();
        }
    }

    private HttpResponse<byte[]> post(String body, String size) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + mock.port() + "/v1/embeddings"))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body));
        if (size != null) {
            b.header("X-Mock-Answer-Bytes", size);
        }
        return http.send(b.build(), HttpResponse.BodyHandlers.ofByteArray());
    }

    @Test
    void answersTheAskedSizeAsJsonWithContentLengthWithOrWithoutAModel() throws Exception {
        for (String body : new String[] {Requests.EMBEDDINGS_BODY, "{\"input\":\"hi\"}"}) {
            HttpResponse<byte[]> r = post(body, "5000");
            assertEquals(200, r.statusCode(), body);
            assertEquals("application/json", r.headers().firstValue("content-type").orElse(""));
            assertEquals(5000, r.headers().firstValueAsLong("content-length").orElse(-1));
            assertArrayEquals(MockEmbeddings.body(5000), r.body(), "the cached body, byte for byte");
            MockEmbeddingsTest.checkShape(r.body(), "over HTTP");
        }
    }

    @Test
    void theSizeIsBoundedAndDefaultsToOneMib() throws Exception {
        Map<String, Integer> expected = Map.of(
                "1", MockEmbeddings.MIN_BYTES,
                "-5", MockEmbeddings.MIN_BYTES,
                "999999999999", MockEmbeddings.MAX_BYTES,
                "lots", MockEmbeddings.DEFAULT_BYTES);
        for (Map.Entry<String, Integer> e : expected.entrySet()) {
            HttpResponse<byte[]> r = post(Requests.EMBEDDINGS_BODY, e.getKey());
            assertEquals(200, r.statusCode(), e.getKey());
            assertEquals((long) e.getValue(), r.headers().firstValueAsLong("content-length").orElse(-1), e.getKey());
            assertEquals((int) e.getValue(), r.body().length, e.getKey());
        }
        assertEquals(MockEmbeddings.DEFAULT_BYTES, post(Requests.EMBEDDINGS_BODY, null).body().length);
    }

    @Test
    void onlyAPostIsAnEmbeddingsCall() throws Exception {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(
                URI.create("http://127.0.0.1:" + mock.port() + "/v1/embeddings")).GET().build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(404, r.statusCode());
    }

    @Test
    void theScenariosClientReadsWholeAnswersOnOneConnectionAndTheMockKeepsOnlyItsOwnReference() throws Exception {
        int size = 3 * 1024 * 1024 + 5;
        // The smallest buffer the client takes, so that heads and bodies share reads and a body takes hundreds.
        for (int buffer : new int[] {LargeAnswerClient.READ_BUFFER_BYTES, 16 * 1024}) {
            try (LargeAnswerClient c = new LargeAnswerClient(new InetSocketAddress("127.0.0.1", mock.port()),
                    Requests.embeddings(mock.port(), size), ByteBuffer.allocateDirect(buffer), 30_000)) {
                for (int i = 0; i < 3; i++) {
                    assertEquals(size, c.exchange(), "answer " + i + " with a buffer of " + buffer);
                }
            }
        }
        // The stats are served by the mock's one event loop after it finished writing the last
        // answer (which releases the answer's reference): six answers and this request.
        assertEquals(7L, MockStats.fetch(mock.port()).get("requests"));
        ByteBuf probe = mock.embeddings.answer(size);
        assertEquals(2, probe.refCnt(), "the cache's reference and this probe's; every answer released its own");
        mock.stop();
        mock = null;
        assertEquals(1, probe.refCnt(), "stopping released the cache's");
        probe.release();
    }
}
