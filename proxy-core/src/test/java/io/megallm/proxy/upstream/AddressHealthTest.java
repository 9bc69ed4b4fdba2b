package io.megallm.proxy.upstream;

import org.junit.jupiter.api.Test;

import java.net.InetAddress;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Which of a name's addresses the next connection dials (§15, as httpx goes on to the next). */
class AddressHealthTest {

    private final AtomicLong now = new AtomicLong(1_000);
    private final AddressHealth health = new AddressHealth(now::get);

    private static InetAddress ip(int last) throws Exception {
        return InetAddress.getByAddress(new byte[]{10, 0, 0, (byte) last});
    }

    @Test
    void theFirstAddressUntilItFailsThenTheNextUntilTheRestIsOverOrItOpens() throws Exception {
        List<InetAddress> name = List.of(ip(1), ip(2), ip(3));
        assertEquals(ip(1), health.pick(name));
        health.failed(ip(1));
        assertEquals(ip(2), health.pick(name));
        health.failed(ip(2));
        assertEquals(ip(3), health.pick(name));

        now.addAndGet(AddressHealth.REST_NANOS);
        assertEquals(ip(1), health.pick(name), "the first one's rest is over");
        health.failed(ip(1));
        health.opened(ip(2));
        assertEquals(ip(2), health.pick(name), "a connection to it opened meanwhile");
    }

    @Test
    void withEveryAddressRestingTheOneWhoseRestEndsFirst() throws Exception {
        List<InetAddress> name = List.of(ip(1), ip(2));
        health.failed(ip(2));
        now.addAndGet(5);
        health.failed(ip(1));
        assertEquals(ip(2), health.pick(name));
        assertEquals(ip(7), health.pick(List.of(ip(7))), "a single address is dialled whatever is known");
    }
}
