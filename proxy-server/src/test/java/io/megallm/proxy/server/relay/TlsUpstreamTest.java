package io.megallm.proxy.server.relay;

import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.key.KeyState;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.ssl.SniCompletionEvent;
import io.netty.handler.ssl.SniHandler;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.util.SelfSignedCertificate;
import io.netty.util.Mapping;
import org.junit.jupiter.api.Test;

import java.net.InetSocketAddress;
import java.net.http.HttpResponse;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * An https base URL: the proxy sends SNI and verifies the certificate. The upstream here has a
 * self-signed certificate nobody trusts, so every handshake must fail, which proves
 * verification is on; the server records the SNI name each ClientHello carried.
 */
class TlsUpstreamTest {

    @Test
    void sendsSniAndRefusesAnUntrustedCertificate() throws Exception {
        SelfSignedCertificate cert = new SelfSignedCertificate("localhost");
        SslContext serverTls = SslContextBuilder.forServer(cert.certificate(), cert.privateKey()).build();
        BlockingQueue<String> sniNames = new LinkedBlockingQueue<>();
        EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
        try {
            Mapping<String, SslContext> mapping = host -> serverTls;
            Channel server = new ServerBootstrap().group(group).channel(NioServerSocketChannel.class)
                    .childHandler(new ChannelInitializer<SocketChannel>() {
                        @Override
                        protected void initChannel(SocketChannel ch) {
                            ch.pipeline().addLast(new SniHandler(mapping), new ChannelInboundHandlerAdapter() {
                                @Override
                                public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
                                    if (evt instanceof SniCompletionEvent sni) {
                                        sniNames.add(String.valueOf(sni.hostname()));
                                    }
                                    ctx.fireUserEventTriggered(evt);
                                }

                                @Override
                                public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
                                    ctx.close();
                                }
                            });
                        }
                    }).bind("127.0.0.1", 0).sync().channel();
            int port = ((InetSocketAddress) server.localAddress()).getPort();
            try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of(
                    "MEGALLM_BASE_URL", "https://localhost:" + port + "/v1", "MEGALLM_MAX_RETRIES", "0"))) {
                HttpResponse<String> r = p.chat();
                assertEquals(502, r.statusCode(), r.body());
                assertTrue(r.body().contains("\"code\":\"upstream_unreachable\""), r.body());
                assertEquals("localhost", sniNames.poll(5, TimeUnit.SECONDS));
                // A certificate that does not check out fails every retry and every key alike:
                // one handshake, not one per key (the egress audit counted 12 for one request).
                assertNull(sniNames.poll(), "a second handshake for one request (its SNI came before the 502)");
                for (ApiKey k : p.server.keys().keys()) {
                    assertEquals(KeyState.Kind.AVAILABLE, k.state().kind(), "a TLS failure is not the key's fault");
                }
                assertTrue(p.logLines().stream().anyMatch(l -> l.startsWith("WARN ") && l.contains(" failed (TLS: ")),
                        "app.log says why: " + p.logLines());
            }
            server.close().sync();
        } finally {
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
            cert.delete();
        }
    }
}
