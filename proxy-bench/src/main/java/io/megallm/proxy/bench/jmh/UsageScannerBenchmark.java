package io.megallm.proxy.bench.jmh;

import io.megallm.proxy.usage.UsageScanner;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

/**
 * {@code UsageScanner} over the answers the relay scans on the event loop: the mock's JSON chat
 * answer (594 bytes, the body of every request in the closed-loop rows), one SSE event of a
 * stream (a content delta), and an embeddings answer (16 vectors of 1,536 numbers, ~330 KB: the
 * shape of a batch {@code /v1/embeddings} call, almost all of it outside JSON strings), each in
 * a direct buffer as the socket fills it. The report is per scan; divide by the size for per byte.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
@State(Scope.Benchmark)
public class UsageScannerBenchmark {

    static final String ANSWER = "{\"id\":\"chatcmpl-mock0000000000000000000000\",\"object\":\"chat.completion\","
            + "\"created\":1764000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
            + "\"assistant\",\"content\":\"Hello! This answer comes from the megallm-proxy mock upstream. It is a "
            + "fixed text of a realistic size, so that benchmarks measure the relay and not the generator.\","
            + "\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,"
            + "\"completion_tokens\":38,\"total_tokens\":50,\"prompt_tokens_details\":{\"cached_tokens\":0},"
            + "\"completion_tokens_details\":{\"reasoning_tokens\":0}},\"system_fingerprint\":\"fp_mock\"}";

    static final String EVENT = "data: {\"id\":\"chatcmpl-mock0000000000000000000000\",\"object\":"
            + "\"chat.completion.chunk\",\"created\":1764000000,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":"
            + "\"fp_mock\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" token\"},\"logprobs\":null,"
            + "\"finish_reason\":null}]}\n\n";

    static final String EMBEDDINGS = embeddings(16, 1536);

    @Param({"answer", "event", "embeddings"})
    public String shape;

    private ByteBuf bytes;

    @Setup(Level.Trial)
    public void setup() {
        String text = switch (shape) {
            case "answer" -> ANSWER;
            case "event" -> EVENT;
            default -> EMBEDDINGS;
        };
        byte[] b = text.getBytes(StandardCharsets.UTF_8);
        bytes = Unpooled.directBuffer(b.length).writeBytes(b);
        UsageScanner s = new UsageScanner();
        s.scan(bytes);
        if ("answer".equals(shape) && (!s.found() || s.promptTokens() != 12 || s.completionTokens() != 38)) {
            throw new IllegalStateException("the scanner missed the answer's usage");
        }
        if ("embeddings".equals(shape) && (!s.found() || s.promptTokens() != 8)) {
            throw new IllegalStateException("the scanner missed the embeddings' usage");
        }
    }

    /** An OpenAI embeddings answer: numbers as the API prints them, the usage at the end. */
    static String embeddings(int vectors, int dimensions) {
        java.util.Random random = new java.util.Random(7);
        StringBuilder sb = new StringBuilder("{\"object\":\"list\",\"data\":[");
        for (int v = 0; v < vectors; v++) {
            sb.append(v == 0 ? "" : ",").append("{\"object\":\"embedding\",\"index\":").append(v)
                    .append(",\"embedding\":[");
            for (int d = 0; d < dimensions; d++) {
                sb.append(d == 0 ? "" : ",").append(String.format(java.util.Locale.ROOT, "%.10f", random.nextGaussian() * 0.03));
            }
            sb.append("]}");
        }
        return sb.append("],\"model\":\"text-embedding-3-small\",\"usage\":{\"prompt_tokens\":8,\"total_tokens\":8}}")
                .toString();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        bytes.release();
    }

    @Benchmark
    public long scan() {
        UsageScanner s = new UsageScanner();
        s.scan(bytes);
        return s.completionTokens();
    }
}
