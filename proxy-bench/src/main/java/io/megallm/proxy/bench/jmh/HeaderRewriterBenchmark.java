package io.megallm.proxy.bench.jmh;

import io.megallm.proxy.http.Exchange;
import io.megallm.proxy.http.InboundRequest;
import io.megallm.proxy.http.RequestReader;
import io.megallm.proxy.http.ServerLifecycle;
import io.megallm.proxy.relay.HeaderRewriter;
import io.megallm.proxy.upstream.UpstreamTarget;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.megallm.proxy.http.ResponseEncoder;
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

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

/**
 * {@code HeaderRewriter.upstreamHead} (the upstream request head as bytes, built once per
 * request) on the request an OpenAI SDK sends for a chat completion (16 headers, a JSON body). The {@link InboundRequest} is the real one: the bytes
 * go through the server's own decoder and {@link RequestReader} in an {@link EmbeddedChannel}
 * whose peer address is a real IPv4 address, so X-Forwarded-For is built as in production.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
@State(Scope.Benchmark)
public class HeaderRewriterBenchmark {

    static final String BODY = "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}";

    static final String REQUEST = "POST /v1/chat/completions HTTP/1.1\r\n"
            + "Host: localhost:8000\r\n"
            + "Accept: application/json\r\n"
            + "Content-Type: application/json\r\n"
            + "User-Agent: OpenAI/Python 1.82.0\r\n"
            + "X-Stainless-Lang: python\r\n"
            + "X-Stainless-Package-Version: 1.82.0\r\n"
            + "X-Stainless-OS: Linux\r\n"
            + "X-Stainless-Arch: x64\r\n"
            + "X-Stainless-Runtime: CPython\r\n"
            + "X-Stainless-Runtime-Version: 3.12.3\r\n"
            + "Authorization: Bearer sk-client-supplied-key-0000000000000000\r\n"
            + "X-Stainless-Async: false\r\n"
            + "X-Stainless-Retry-Count: 0\r\n"
            + "X-Stainless-Read-Timeout: 600\r\n"
            + "Accept-Encoding: gzip, deflate\r\n"
            + "Connection: keep-alive\r\n"
            + "Content-Length: " + BODY.length() + "\r\n"
            + "\r\n"
            + BODY;

    /** An embedded channel whose peer is 10.1.2.3:54321, as a TCP client would be. */
    static final class RemoteEmbeddedChannel extends EmbeddedChannel {
        static final InetSocketAddress REMOTE = new InetSocketAddress("10.1.2.3", 54321);

        RemoteEmbeddedChannel(io.netty.channel.ChannelHandler... handlers) {
            super(handlers);
        }

        @Override
        protected SocketAddress remoteAddress0() {
            return REMOTE;
        }
    }

    private EmbeddedChannel channel;
    private InboundRequest request;
    private UpstreamTarget target;

    @Setup(Level.Trial)
    public void setup() {
        BenchLogging.quiet();
        Exchange[] captured = new Exchange[1];
        channel = new RemoteEmbeddedChannel(new ResponseEncoder(), new RequestReader(ex -> captured[0] = ex, 10 << 20, new ServerLifecycle()));
        channel.writeInbound(Unpooled.copiedBuffer(REQUEST, StandardCharsets.US_ASCII));
        if (captured[0] == null) {
            throw new IllegalStateException("the request did not reach the router");
        }
        request = captured[0].request();
        target = UpstreamTarget.parse("https://ai.megallm.io/v1");
        String h = new String(HeaderRewriter.upstreamHead(request, target, "/v1/chat/completions"),
                StandardCharsets.ISO_8859_1).toLowerCase(java.util.Locale.ROOT);
        if (!h.contains("\r\nx-forwarded-for: ") || h.contains("\r\nconnection:")) {
            throw new IllegalStateException("unexpected rewrite: " + h);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        channel.finishAndReleaseAll();
    }

    @Benchmark
    public byte[] upstreamHead() {
        return HeaderRewriter.upstreamHead(request, target, "/v1/chat/completions");
    }
}
