package io.megallm.proxy.upstream;

import io.netty.resolver.AddressResolver;
import io.netty.resolver.AddressResolverGroup;
import io.netty.resolver.InetNameResolver;
import io.netty.util.concurrent.EventExecutor;
import io.netty.util.NetUtil;
import io.netty.util.concurrent.Promise;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * Resolves upstream host names with the operating system's resolver (hosts file, search
 * domains, the JVM's DNS cache, as every other program on the box) but on a small thread pool
 * of its own. Netty's default resolver calls the same blocking lookup on the event loop, where
 * one slow DNS answer would stall every stream that loop carries.
 *
 * <p>An address literal needs no lookup, and a name looked up less than {@link #TTL_NANOS} ago
 * is answered from the last lookup: both on the loop itself, so a new upstream connection does
 * not cost two thread hand-offs (to the lookup thread and back) when nothing is to be looked up.
 */
final class OffloadedResolverGroup extends AddressResolverGroup<InetSocketAddress> {

    /** As long as the JVM keeps a successful lookup by default (networkaddress.cache.ttl). */
    static final long TTL_NANOS = TimeUnit.SECONDS.toNanos(30);

    private final ExecutorService lookups;
    private final ConcurrentHashMap<String, Resolved> recent = new ConcurrentHashMap<>();
    /** Which of a name's addresses a connection goes to: not one that just refused one. */
    private final AddressHealth health = new AddressHealth();

    private record Resolved(List<InetAddress> addresses, long atNanos) {
        boolean fresh(long now) {
            return now - atNanos < TTL_NANOS;
        }
    }

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
                List<InetAddress> known = known(host);
                if (known != null) {
                    promise.trySuccess(health.pick(known));
                    return;
                }
                lookups.execute(() -> {
                    try {
                        promise.trySuccess(health.pick(lookUp(host)));
                    } catch (UnknownHostException | SecurityException e) {
                        promise.tryFailure(e);
                    }
                });
            }

            @Override
            protected void doResolveAll(String host, Promise<List<InetAddress>> promise) {
                List<InetAddress> known = known(host);
                if (known != null) {
                    promise.trySuccess(known);
                    return;
                }
                lookups.execute(() -> {
                    try {
                        promise.trySuccess(lookUp(host));
                    } catch (UnknownHostException | SecurityException e) {
                        promise.tryFailure(e);
                    }
                });
            }
        }.asAddressResolver();
    }

    /** The addresses of a literal, or of a name looked up a moment ago; null when a lookup is due. */
    List<InetAddress> known(String host) {
        byte[] literal = NetUtil.createByteArrayFromIpAddressString(host);
        if (literal != null) {
            try {
                return List.of(InetAddress.getByAddress(host, literal));
            } catch (UnknownHostException e) {
                return null;
            }
        }
        Resolved r = recent.get(host);
        return r != null && r.fresh(System.nanoTime()) ? r.addresses() : null;
    }

    private List<InetAddress> lookUp(String host) throws UnknownHostException {
        List<InetAddress> addresses = Arrays.asList(InetAddress.getAllByName(host));
        recent.put(host, new Resolved(addresses, System.nanoTime()));
        return addresses;
    }

    /** What the connections through this resolver report about the addresses they dialled. */
    AddressHealth health() {
        return health;
    }

    @Override
    public void close() {
        super.close();
        lookups.shutdownNow();
    }
}
