package io.megallm.proxy.upstream;

import io.netty.resolver.AddressResolver;
import io.netty.resolver.AddressResolverGroup;
import io.netty.resolver.InetNameResolver;
import io.netty.util.concurrent.EventExecutor;
import io.netty.util.concurrent.Promise;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * Resolves upstream host names with the operating system's resolver (hosts file, search
 * domains, the JVM's DNS cache, as every other program on the box) but on a small thread pool
 * of its own. Netty's default resolver calls the same blocking lookup on the event loop, where
 * one slow DNS answer would stall every stream that loop carries.
 */
final class OffloadedResolverGroup extends AddressResolverGroup<InetSocketAddress> {

    private final ExecutorService lookups;

    OffloadedResolverGroup() {
        ThreadPoolExecutor pool = new ThreadPoolExecutor(2, 2, 30, TimeUnit.SECONDS, new LinkedBlockingQueue<>(),
                r -> {
                    Thread t = new Thread(r, "megallm-dns");
                    t.setDaemon(true);
                    return t;
                });
        pool.allowCoreThreadTimeOut(true);
        this.lookups = pool;
    }

    @Override
    protected AddressResolver<InetSocketAddress> newResolver(EventExecutor loop) {
        return new InetNameResolver(loop) {
            @Override
            protected void doResolve(String host, Promise<InetAddress> promise) {
                lookups.execute(() -> {
                    try {
                        promise.trySuccess(InetAddress.getByName(host));
                    } catch (UnknownHostException | SecurityException e) {
                        promise.tryFailure(e);
                    }
                });
            }

            @Override
            protected void doResolveAll(String host, Promise<List<InetAddress>> promise) {
                lookups.execute(() -> {
                    try {
                        promise.trySuccess(Arrays.asList(InetAddress.getAllByName(host)));
                    } catch (UnknownHostException | SecurityException e) {
                        promise.tryFailure(e);
                    }
                });
            }
        }.asAddressResolver();
    }

    @Override
    public void close() {
        super.close();
        lookups.shutdownNow();
    }
}
