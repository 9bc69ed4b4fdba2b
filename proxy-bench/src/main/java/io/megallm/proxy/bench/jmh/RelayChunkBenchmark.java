package io.megallm.proxy.bench.jmh;

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
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.concurrent.TimeUnit;

/**
 * One SSE event relayed through the proxy on a long-lived stream: the upstream writes one
 * HTTP chunk (a ~150-byte {@code data:} event), the proxy scans its chunk framing
 * (ResponseParser), hands the received buffer to the relay (UpstreamHandler → RelayCall →
 * Exchange), writes it to the client unchanged past the response encoder, flushes and re-arms
 * its reads; the client reads it. Real loopback
 * sockets, the real {@code ProxyServer} in this JVM; the benchmark thread only writes and reads
 * pre-filled direct buffers.
 *
 * <p>Run with {@code -prof gc}: {@code gc.alloc.rate.norm} is the heap bytes allocated per
 * relayed chunk by every thread of the JVM, which is the proxy's event loop plus background
 * noise. {@code directOneChunk} is the same round trip without the proxy (upstream socket
 * straight to client socket): it shows what the fixture itself costs (it should be ~0 B/op).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
// Leak detection off as in the proxy's Main; Netty's default samples one buffer in 128 with a stack trace.
@Fork(value = 1, jvmArgsAppend = {"-Xms512m", "-Xmx512m", "-Dio.netty.leakDetection.level=disabled"})
public class RelayChunkBenchmark {

    static final String EVENT = "data: {\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"sent_ns\":"
            + "123456789012345,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok42 \"}}]}\n\n";

    static String chunk() {
        return Integer.toHexString(EVENT.length()) + "\r\n" + EVENT + "\r\n";
    }

    @State(Scope.Benchmark)
    public static class Relayed {
        RelayFixture fx;
        ByteBuffer chunk;
        ByteBuffer scratch;
        RelayFixture.Framing eventEnd;

        @Setup(Level.Trial)
        public void setup() throws Exception {
            fx = new RelayFixture();
            RelayFixture.writeFully(fx.client, RelayFixture.direct(RelayFixture.request(RelayFixture.BODY_STREAM, true)));
            fx.acceptUpstream();
            scratch = ByteBuffer.allocateDirect(64 * 1024);
            // The proxy's request: head, then the body unchanged.
            RelayFixture.readMessage(fx.upstream, scratch,
                    new RelayFixture.Framing("\r\n\r\n", RelayFixture.BODY_STREAM.length()));
            RelayFixture.writeFully(fx.upstream, RelayFixture.direct("HTTP/1.1 200 OK\r\n"
                    + "Content-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n"
                    + "Transfer-Encoding: chunked\r\n\r\n"));
            RelayFixture.readMessage(fx.client, scratch, new RelayFixture.Framing("\r\n\r\n", 0));
            chunk = RelayFixture.direct(chunk());
            // The relayed chunk is "<hex>\r\n" + event + "\r\n"; the event ends with "\n\n".
            eventEnd = new RelayFixture.Framing("\n\n\r\n", 0);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            fx.close();
        }
    }

    @State(Scope.Benchmark)
    public static class Direct {
        ServerSocketChannel listener;
        SocketChannel writer;
        SocketChannel reader;
        ByteBuffer chunk;
        ByteBuffer scratch;
        RelayFixture.Framing eventEnd;

        @Setup(Level.Trial)
        public void setup() throws IOException {
            listener = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0));
            reader = SocketChannel.open(listener.getLocalAddress());
            writer = listener.accept();
            writer.setOption(StandardSocketOptions.TCP_NODELAY, true);
            chunk = RelayFixture.direct(chunk());
            scratch = ByteBuffer.allocateDirect(64 * 1024);
            eventEnd = new RelayFixture.Framing("\n\n\r\n", 0);
        }

        @TearDown(Level.Trial)
        public void tearDown() throws IOException {
            writer.close();
            reader.close();
            listener.close();
        }
    }

    @Benchmark
    public void relayOneChunk(Relayed s) throws IOException {
        RelayFixture.writeFully(s.fx.upstream, s.chunk);
        RelayFixture.readMessage(s.fx.client, s.scratch, s.eventEnd);
    }

    @Benchmark
    public void directOneChunk(Direct s) throws IOException {
        RelayFixture.writeFully(s.writer, s.chunk);
        RelayFixture.readMessage(s.reader, s.scratch, s.eventEnd);
    }
}
