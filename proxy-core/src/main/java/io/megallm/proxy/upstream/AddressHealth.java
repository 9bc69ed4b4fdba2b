package io.megallm.proxy.upstream;

import java.net.InetAddress;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * Addresses that refused or dropped a connection lately, so that the next connection to a name
 * with several addresses (a DNS round robin with a dead node, a dual-stack name whose service
 * listens on one family) goes to another one, as httpx and curl go on to a name's next address
 * (contract §15). An address rests for {@link #REST_NANOS}, or until a connection to it opens;
 * when every address of a name rests, the one whose rest ends first is tried.
 */
final class AddressHealth {

    static final long REST_NANOS = TimeUnit.SECONDS.toNanos(30);

    private final ConcurrentHashMap<InetAddress, Long> restingUntil = new ConcurrentHashMap<>();
    private final LongSupplier nanos;

    AddressHealth() {
        this(System::nanoTime);
    }

    AddressHealth(LongSupplier nanos) {
        this.nanos = nanos;
    }

    /** The address to dial among a name's {@code addresses} (in the resolver's order). */
    InetAddress pick(List<InetAddress> addresses) {
        InetAddress first = addresses.get(0);
        if (addresses.size() == 1 || restingUntil.isEmpty()) {
            return first;
        }
        long now = nanos.getAsLong();
        InetAddress soonest = first;
        long soonestEnd = Long.MAX_VALUE;
        for (InetAddress a : addresses) {
            Long until = restingUntil.get(a);
            if (until == null) {
                return a;
            }
            if (until - now <= 0) {
                restingUntil.remove(a, until);
                return a;
            }
            if (soonestEnd == Long.MAX_VALUE || until - soonestEnd < 0) {
                soonest = a;
                soonestEnd = until;
            }
        }
        return soonest;
    }

    /** A connection to {@code address} was refused, reset or timed out before it opened. */
    void failed(InetAddress address) {
        restingUntil.put(address, nanos.getAsLong() + REST_NANOS);
    }

    /** A connection to {@code address} opened. */
    void opened(InetAddress address) {
        if (!restingUntil.isEmpty()) {
            restingUntil.remove(address);
        }
    }
}
