package io.megallm.proxy.bench.jmh;

import io.megallm.proxy.bench.MockUpstreamServer;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

/**
 * One non-streaming chat completion through the proxy on keep-alive connections, end to end:
 * the client's request is decoded, routed, JSON-checked, given a key and headers, sent on the
 * pooled upstream connection; the upstream's answer (the mock's 633-byte completion) is relayed
 * back. Real loopback sockets, the real {@code ProxyServer} in this JVM, the benchmark thread
 * playing client and upstream with pre-filled buffers. With {@code -prof gc},
 * {@code gc.alloc.rate.norm} is the heap bytes the proxy allocates per request (the access log
 * is off here: the bench's logging configuration disables it).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
// Leak detection off as in the proxy's Main.
@Fork(value = 1, jvmArgsAppend = {"-Xms512m", "-Xmx512m", "-Dio.netty.leakDetection.level=disabled"})
@State(Scope.Benchmark)
public class RelayRequestBenchmark {

    private RelayFixture fx;
    private ByteBuffer request;
    private ByteBuffer response;
    private ByteBuffer scratch;
    private RelayFixture.Framing upstreamRequestEnd;
    private RelayFixture.Framing clientResponseEnd;

    @Setup(Level.Trial)
    public void setup() throws Exception {
        fx = new RelayFixture();
        request = RelayFixture.direct(RelayFixture.request(RelayFixture.BODY_NON_STREAM, false));
        int length = MockUpstreamServer.COMPLETION.getBytes(StandardCharsets.UTF_8).length;
        response = RelayFixture.direct("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + length + "\r\n\r\n" + MockUpstreamServer.COMPLETION);
        scratch = ByteBuffer.allocateDirect(64 * 1024);
        upstreamRequestEnd = new RelayFixture.Framing("\r\n\r\n", RelayFixture.BODY_NON_STREAM.length());
        clientResponseEnd = new RelayFixture.Framing("\r\n\r\n", length);
        RelayFixture.writeFully(fx.client, request);
        fx.acceptUpstream();
        serveOne();
    }

    private void serveOne() throws IOException {
        RelayFixture.readMessage(fx.upstream, scratch, upstreamRequestEnd);
        RelayFixture.writeFully(fx.upstream, response);
        RelayFixture.readMessage(fx.client, scratch, clientResponseEnd);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        fx.close();
    }

    @Benchmark
    public void relayOneRequest() throws IOException {
        RelayFixture.writeFully(fx.client, request);
        serveOne();
    }
}
