package io.megallm.proxy.upstream;

import io.netty.channel.DefaultEventLoop;
import io.netty.channel.EventLoop;
import io.netty.resolver.AddressResolver;
import io.netty.util.concurrent.Future;
import org.junit.jupiter.api.Test;

import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Address literals and names just looked up are answered on the loop, without a hand-off. */
class OffloadedResolverGroupTest {

    @Test
    void literalsAndRecentNamesResolveWithoutLeavingTheLoop() throws Exception {
        EventLoop loop = new DefaultEventLoop();
        OffloadedResolverGroup group = new OffloadedResolverGroup();
        try {
            AddressResolver<InetSocketAddress> resolver = loop.submit(() -> group.getResolver(loop)).get();
            // Done at once, inside the call on the loop: no lookup thread was involved.
            assertTrue(loop.submit(() -> resolver.resolve(InetSocketAddress.createUnresolved("127.0.0.1", 80)).isDone())
                    .get());
            assertTrue(loop.submit(() -> resolver.resolve(InetSocketAddress.createUnresolved("::1", 80)).isDone())
                    .get());

            Future<InetSocketAddress> first = loop.submit(
                    () -> resolver.resolve(InetSocketAddress.createUnresolved("localhost", 443))).get();
            InetSocketAddress looked = first.get(10, TimeUnit.SECONDS);
            assertTrue(looked.getAddress().isLoopbackAddress());
            Future<InetSocketAddress> again = loop.submit(
                    () -> resolver.resolve(InetSocketAddress.createUnresolved("localhost", 443))).get();
            assertTrue(again.isDone());
            assertEquals(looked.getAddress(), again.getNow().getAddress());
        } finally {
            group.close();
            loop.shutdownGracefully(0, 1, TimeUnit.SECONDS);
        }
    }
}
