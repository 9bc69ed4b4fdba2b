package io.megallm.proxy.bench.jmh;

import io.megallm.proxy.relay.JsonBodyCheck;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.CompositeByteBuf;
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
 * {@code JsonBodyCheck.check} (jackson-core's streaming parser over the body buffers) on a chat
 * request of about 1 KB and about 1 MB. The body is a composite of 16 KiB direct buffers, the
 * shape {@code RequestReader} hands on (the buffers the socket filled, not a copy).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
@State(Scope.Benchmark)
public class JsonBodyCheckBenchmark {

    @Param({"1024", "1048576"})
    public int size;

    private ByteBuf body;

    static String chatBody(int size) {
        StringBuilder messages = new StringBuilder();
        String turn = "{\"role\":\"user\",\"content\":\"Tell me about the weather in a few words, please. "
                + "Include the temperature, the wind and whether it will rain.\"},";
        String head = "{\"model\":\"gpt-4o-mini\",\"temperature\":0.7,\"stream\":false,\"messages\":[";
        String tail = "{\"role\":\"user\",\"content\":\"Thanks\"}]}";
        while (head.length() + messages.length() + turn.length() + tail.length() <= size) {
            messages.append(turn);
        }
        return head + messages + tail;
    }

    @Setup(Level.Trial)
    public void setup() {
        byte[] bytes = chatBody(size).getBytes(StandardCharsets.UTF_8);
        CompositeByteBuf composite = Unpooled.compositeBuffer(Integer.MAX_VALUE);
        for (int off = 0; off < bytes.length; off += 16384) {
            int n = Math.min(16384, bytes.length - off);
            composite.addComponent(true, Unpooled.directBuffer(n).writeBytes(bytes, off, n));
        }
        body = composite;
        JsonBodyCheck.Result r = JsonBodyCheck.check(body);
        if (r.error() != null || !"gpt-4o-mini".equals(r.model())) {
            throw new IllegalStateException("bad benchmark body: " + r);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        body.release();
    }

    @Benchmark
    public JsonBodyCheck.Result check() {
        return JsonBodyCheck.check(body);
    }
}
