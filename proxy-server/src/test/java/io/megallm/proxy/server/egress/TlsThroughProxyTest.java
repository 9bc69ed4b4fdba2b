package io.megallm.proxy.server.egress;

import io.megallm.proxy.server.ProxyServer;
import io.megallm.proxy.server.config.ConfigLoader;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.TrustManagerFactory;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Contract §15: an https base URL through an HTTP proxy uses CONNECT and TLS end to end, the
 * certificate checked against the upstream's own name. The upstream here is a TLS server with a
 * certificate for "localhost" only, made with the JDK's keytool for this test.
 */
class TlsThroughProxyTest {

    private static final String PASSWORD = "test-store";
    private static Path dir;
    private static EventLoopGroup group;
    private static Channel upstream;
    private static SslContext clientTls;

    @BeforeAll
    static void tlsUpstream() throws Exception {
        dir = Files.createTempDirectory("tls-upstream");
        Path store = dir.resolve("upstream.p12");
        Process keytool = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "keytool").toString(),
                "-genkeypair", "-keystore", store.toString(), "-storetype", "PKCS12", "-storepass", PASSWORD,
                "-alias", "upstream", "-keyalg", "RSA", "-keysize", "2048", "-dname", "CN=localhost",
                "-ext", "SAN=dns:localhost", "-validity", "2").redirectErrorStream(true).start();
        String out = new String(keytool.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(keytool.waitFor(60, TimeUnit.SECONDS) && keytool.exitValue() == 0, out);
        KeyStore ks = KeyStore.getInstance("PKCS12");
        try (InputStream in = Files.newInputStream(store)) {
            ks.load(in, PASSWORD.toCharArray());
        }
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(ks, PASSWORD.toCharArray());
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(ks);
        clientTls = SslContextBuilder.forClient().trustManager(tmf).build();
        SslContext serverTls = SslContextBuilder.forServer(kmf).build();
        group = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
        upstream = new ServerBootstrap().group(group).channel(NioServerSocketChannel.class)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        ch.pipeline().addLast(serverTls.newHandler(ch.alloc()), new HttpServerCodec(),
                                new HttpObjectAggregator(1 << 20), new SimpleChannelInboundHandler<FullHttpRequest>() {
                                    @Override
                                    protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest req) {
                                        byte[] body = ("{\"tls\":true,\"host\":\"" + req.headers().get(HttpHeaderNames.HOST)
                                                + "\"}").getBytes(StandardCharsets.UTF_8);
                                        FullHttpResponse r = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
                                                HttpResponseStatus.OK, Unpooled.wrappedBuffer(body));
                                        r.headers().set(HttpHeaderNames.CONTENT_TYPE, "application/json")
                                                .setInt(HttpHeaderNames.CONTENT_LENGTH, body.length);
                                        ctx.writeAndFlush(r).addListener(ChannelFutureListener.CLOSE_ON_FAILURE);
                                    }
                                });
                    }
                }).bind("127.0.0.1", 0).sync().channel();
    }

    @AfterAll
    static void stop() {
        if (upstream != null) {
            upstream.close().syncUninterruptibly();
        }
        if (group != null) {
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
    }

    private static int upstreamPort() {
        return ((InetSocketAddress) upstream.localAddress()).getPort();
    }

    private static HttpResponse<String> chatThrough(Map<String, String> extra) throws Exception {
        Path work = Files.createTempDirectory("tls-proxy");
        Files.createDirectories(work.resolve("data"));
        Files.writeString(work.resolve("data/keys.txt"), "sk-mega-tls-test-key-000000000001\n");
        Map<String, String> env = new HashMap<>(Map.of("HOST", "127.0.0.1", "PORT", "0", "MEGALLM_TIMEOUT", "10",
                "MEGALLM_MAX_RETRIES", "0", "MAX_KEY_RETRIES", "0", "SHUTDOWN_GRACE", "1", "KEY_WAIT", "0"));
        env.putAll(extra);
        ProxyServer server = new ProxyServer(ConfigLoader.load(env, work)).upstreamTls(clientTls).start();
        try {
            return HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                            URI.create("http://127.0.0.1:" + server.port() + "/v1/chat/completions"))
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"m\"}")).build(),
                    HttpResponse.BodyHandlers.ofString());
        } finally {
            server.shutdown();
        }
    }

    @Test
    void anHttpsUpstreamIsReachedThroughConnectWithTlsEndToEnd() throws Exception {
        try (TestProxy proxy = new TestProxy(TestProxy.Kind.HTTP, null, null)) {
            HttpResponse<String> r = chatThrough(Map.of(
                    "MEGALLM_BASE_URL", "https://localhost:" + upstreamPort() + "/v1",
                    "HTTPS_PROXY", "http://127.0.0.1:" + proxy.port()));
            assertEquals(200, r.statusCode(), r.body());
            assertEquals("{\"tls\":true,\"host\":\"localhost:" + upstreamPort() + "\"}", r.body());
            assertEquals(List.of("localhost:" + upstreamPort()), proxy.destinations, "CONNECT names the upstream");
        }
    }

    @Test
    void theCertificateIsCheckedAgainstTheUpstreamsNameThroughTheProxyToo() throws Exception {
        try (TestProxy proxy = new TestProxy(TestProxy.Kind.HTTP, null, null)) {
            // The certificate is for localhost; the base URL names 127.0.0.1: the handshake must fail.
            HttpResponse<String> r = chatThrough(Map.of(
                    "MEGALLM_BASE_URL", "https://127.0.0.1:" + upstreamPort() + "/v1",
                    "HTTPS_PROXY", "http://127.0.0.1:" + proxy.port()));
            assertEquals(502, r.statusCode(), r.body());
            assertEquals(List.of("127.0.0.1:" + upstreamPort()), proxy.destinations);
        }
    }
}
