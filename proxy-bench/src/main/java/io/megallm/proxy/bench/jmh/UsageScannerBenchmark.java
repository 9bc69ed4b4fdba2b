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
 * answer (594 bytes, the body of every request in the closed-loop rows), and one SSE event of a
 * stream (a content delta), each in a direct buffer as the socket fills it.
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

    @Param({"answer", "event"})
    public String shape;

    private ByteBuf bytes;

    @Setup(Level.Trial)
    public void setup() {
        byte[] b = ("answer".equals(shape) ? ANSWER : EVENT).getBytes(StandardCharsets.UTF_8);
        bytes = Unpooled.directBuffer(b.length).writeBytes(b);
        UsageScanner s = new UsageScanner();
        s.scan(bytes);
        if ("answer".equals(shape) && (!s.found() || s.promptTokens() != 12 || s.completionTokens() != 38)) {
            throw new IllegalStateException("the scanner missed the answer's usage");
        }
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
