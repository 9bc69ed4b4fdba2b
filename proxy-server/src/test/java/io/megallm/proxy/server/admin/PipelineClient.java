package io.megallm.proxy.server.admin;

import io.megallm.proxy.http.RequestReader;
import io.megallm.proxy.http.ServerLifecycle;
import io.megallm.proxy.key.KeyPool;
import io.megallm.proxy.relay.Relay;
import io.megallm.proxy.relay.RelaySettings;
import io.megallm.proxy.server.keys.KeyFile;
import io.megallm.proxy.server.routes.AccessControl;
import io.megallm.proxy.server.routes.Router;
import io.megallm.proxy.upstream.UpstreamPools;
import io.megallm.proxy.upstream.UpstreamSettings;
import io.megallm.proxy.upstream.UpstreamTarget;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.megallm.proxy.http.ResponseEncoder;

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;

/**
 * The server's real pipeline and router in an {@link EmbeddedChannel} whose peer has a chosen
 * address: how a test meets a non-loopback client without sending traffic off this machine.
 */
final class PipelineClient {

    private PipelineClient() {
    }

    static String exchange(String adminToken, String peerIp, String request) {
        KeyPool keys = new KeyPool();
        keys.reload(List.of("sk-mega-pipeline-test-key-000001"));
        ServerLifecycle lifecycle = new ServerLifecycle();
        UpstreamPools pools = new UpstreamPools(UpstreamTarget.parse("http://127.0.0.1:9/v1"), NioSocketChannel.class,
                new UpstreamSettings(10, 10, 1000, 60, 1));
        Relay relay = new Relay(keys, pools, new RelaySettings(1000, 0, 0, 60), lifecycle);
        Router router = new Router(relay, keys, new KeyFile(Path.of("does-not-exist.txt"), keys),
                new AccessControl(adminToken, List.of()));
        InetSocketAddress peer = new InetSocketAddress(peerIp, 40000);
        EmbeddedChannel ch = new EmbeddedChannel() {
            @Override
            protected SocketAddress remoteAddress0() {
                return peer;
            }
        };
        ch.pipeline().addLast(new ResponseEncoder(),
                new RequestReader(router, 1024 * 1024, lifecycle));
        ch.pipeline().fireChannelActive();
        ch.writeInbound(Unpooled.copiedBuffer(request, StandardCharsets.ISO_8859_1));
        StringBuilder out = new StringBuilder();
        ByteBuf b;
        while ((b = ch.readOutbound()) != null) {
            out.append(b.toString(StandardCharsets.ISO_8859_1));
            b.release();
        }
        ch.finishAndReleaseAll();
        pools.close();
        return out.toString();
    }
}
