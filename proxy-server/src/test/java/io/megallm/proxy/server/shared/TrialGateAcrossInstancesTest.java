package io.megallm.proxy.server.shared;

import io.lettuce.core.RedisClient;
import io.lettuce.core.SetArgs;
import io.lettuce.core.api.StatefulRedisConnection;
import io.megallm.proxy.key.KeyClock;
import io.megallm.proxy.server.keys.Json;
import io.megallm.proxy.server.testing.LocalRedis;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;

import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import static io.megallm.proxy.server.shared.SharedViews.keyEntry;
import static io.megallm.proxy.server.shared.SharedViews.sharedState;
import static io.megallm.proxy.server.shared.SharedViews.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Contract §14, "the trial of a failed key runs on one instance at a time", as the re-audit
 * checked it: three instances on one Redis, all busy, one pool key answering 401 with
 * {@code KEY_RECHECK=1}. The mock upstream sees every trial with its time: one trial per period
 * across the three, each after the doubled wait the previous trial's result set (1, 2, 4 s).
 */
class TrialGateAcrossInstancesTest {

    private static ProxyUnderTest instance(List<String> keys, LocalRedis redis, MockUpstream upstream) throws Exception {
        return startWith(keys, redis, upstream, "1");
    }

    @Test
    void busyInstancesRunOneTrialPerPeriodAfterTheDoubledWait() throws Exception {
        List<String> keys = ProxyUnderTest.keys(2);
        List<Long> trials = new CopyOnWriteArrayList<>();
        MockUpstream.Behavior rejected = MockUpstream.json(401, "{\"error\":{\"message\":\"bad key\"}}");
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             ProxyUnderTest a = instance(keys, redis, upstream);
             ProxyUnderTest b = instance(keys, redis, upstream);
             ProxyUnderTest c = instance(keys, redis, upstream)) {
            List<ProxyUnderTest> all = List.of(a, b, c);
            for (ProxyUnderTest p : all) {
                await(10_000, "shared_state ok on " + p.port(), () -> "ok".equals(sharedState(p)));
            }
            // Key 0 fails on A (the first request the mock sees with it); B and C learn it from
            // Redis before they send anything.
            upstream.on(keys.get(0), (ctx, req) -> {
                trials.add(System.nanoTime());
                rejected.respond(ctx, req);
            });
            for (int i = 0; i < 2; i++) {
                assertEquals(200, a.chat().statusCode());
            }
            for (ProxyUnderTest p : all) {
                await(2000, "key 0 failed on " + p.port(), () -> "failed".equals(keyEntry(p, 0).get("state")));
            }
            assertEquals(1, trials.size(), "key 0 failed on its first request");
            long failedAt = trials.get(0);

            // Two clients per instance, without pause, through the trials due at about 1, 3 and 7 s.
            AtomicBoolean stop = new AtomicBoolean();
            AtomicReference<Throwable> error = new AtomicReference<>();
            List<Thread> clients = new ArrayList<>();
            for (ProxyUnderTest p : all) {
                for (int i = 0; i < 2; i++) {
                    Thread t = new Thread(() -> {
                        try {
                            while (!stop.get()) {
                                int status = p.chat().statusCode();
                                if (status != 200) {
                                    throw new AssertionError("a client got " + status);
                                }
                            }
                        } catch (Throwable e) {
                            error.compareAndSet(null, e);
                        }
                    });
                    t.start();
                    clients.add(t);
                }
            }
            Thread.sleep(8500);
            stop.set(true);
            for (Thread t : clients) {
                t.join(30_000);
            }
            if (error.get() != null) {
                throw new AssertionError("a client failed", error.get());
            }

            List<Long> seen = List.copyOf(trials.subList(1, trials.size()));
            List<Long> at = new ArrayList<>();
            for (long t : seen) {
                at.add(TimeUnit.NANOSECONDS.toMillis(t - failedAt));
            }
            String schedule = "trials of key 0 at (ms after it failed) " + at;

            assertTrue(seen.size() >= 2, "the key got its trials: " + schedule);
            // Each trial comes after the wait the previous one set: 1 s after the failure, then
            // 2 s, 4 s … after the previous trial (a trial landing within the wait is a second
            // trial of the same period, on another instance). The wait starts when the proxy reads
            // the previous 401, after the mock sent it: a tenth of it is room enough; two trials
            // of one period land milliseconds apart.
            long wait = 1000;
            long previous = failedAt;
            for (long t : seen) {
                long gap = TimeUnit.NANOSECONDS.toMillis(t - previous);
                assertTrue(gap >= wait * 9 / 10, "a trial " + gap + " ms after the previous one, within its "
                        + wait + " ms wait; " + schedule);
                previous = t;
                wait *= 2;
            }
        }
    }

    /**
     * The re-audit's schedule of 5.4 / 9.7 / 29.7 s instead of 5 / 15 / 35: an instance that lost the
     * lease moved its own next trial to the lease's end, earlier than the wait it had. A lost claim
     * says who runs the trial, not when it is due: here another instance holds the lease for one
     * more second, and this instance's trial is still due only after its 2 s wait.
     */
    @Test
    void aLostClaimDoesNotBringTheTrialForward() throws Exception {
        List<String> keys = ProxyUnderTest.keys(2);
        List<Long> sent = new CopyOnWriteArrayList<>();
        MockUpstream.Behavior rejected = MockUpstream.json(401, "{}");
        RedisKeyStates.useNioTransport();
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             ProxyUnderTest b = startWith(keys, redis, upstream, "2");
             RedisClient client = RedisClient.create(redis.url());
             StatefulRedisConnection<String, String> c = client.connect()) {
            await(10_000, "shared_state ok", () -> "ok".equals(sharedState(b)));
            upstream.on(keys.get(0), (ctx, req) -> {
                sent.add(System.nanoTime());
                rejected.respond(ctx, req);
            });
            // Another instance holds key 0's trial lease for one more second.
            assertEquals("OK", c.sync().set("megallm:{default}:trial:" + SharedKeyStatesTest.sha256(keys.get(0)),
                    "0123456789ab", SetArgs.Builder.px(1000)));
            for (int i = 0; i < 2; i++) {
                assertEquals(200, b.chat().statusCode());
            }
            assertEquals(1, sent.size(), "key 0 failed on its first request");
            long failedAt = sent.get(0);
            // Busy until the trial, due 2 s after the failure, has run.
            await(6000, "key 0's trial", () -> {
                assertEquals(200, b.chat().statusCode());
                return sent.size() > 1;
            });
            long wait = TimeUnit.NANOSECONDS.toMillis(sent.get(1) - failedAt);
            assertTrue(wait >= 1800, "the trial came " + wait + " ms after the failure, before its 2 s wait");
        }
    }

    private static ProxyUnderTest startWith(List<String> keys, LocalRedis redis, MockUpstream upstream, String recheck)
            throws Exception {
        Map<String, String> env = new HashMap<>();
        env.put("REDIS_URL", redis.url());
        env.put("KEY_RECHECK", recheck);
        return ProxyUnderTest.start(keys, env, KeyClock.SYSTEM, null, upstream);
    }

    /**
     * A trial's lease lasts as long as its holder runs the trial, not the trial's longest time: it
     * is renewed a few seconds at a time, so that a holder that dies mid-trial keeps the key's
     * trials from the other instances for a few seconds, not minutes. Here the upstream never
     * answers the trial (MEGALLM_TIMEOUT 10 s): the lease never has more than one lease's time
     * left, and is still there while the trial runs.
     */
    @Test
    void aRunningTrialsLeaseIsRenewedAFewSecondsAtATime() throws Exception {
        List<String> keys = ProxyUnderTest.keys(2);
        RedisKeyStates.useNioTransport();
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             ProxyUnderTest b = startWith(keys, redis, upstream, "1");
             RedisClient client = RedisClient.create(redis.url());
             StatefulRedisConnection<String, String> c = client.connect()) {
            await(10_000, "shared_state ok", () -> "ok".equals(sharedState(b)));
            String lease = "megallm:{default}:trial:" + SharedKeyStatesTest.sha256(keys.get(0));
            upstream.on(keys.get(0), MockUpstream.json(401, "{}"));
            for (int i = 0; i < 2; i++) {
                assertEquals(200, b.chat().statusCode());
            }
            upstream.on(keys.get(0), MockUpstream.stall());
            // Requests until one carries key 0's trial (due 1 s after the failure), which then hangs.
            Thread trial = new Thread(() -> {
                try {
                    while (upstream.all().stream().filter(r -> keys.get(0).equals(r.key())).count() < 2) {
                        b.chat();
                    }
                } catch (Exception e) {
                    // the answer does not matter here
                }
            });
            trial.start();
            await(5000, "key 0 on trial",
                    () -> upstream.all().stream().filter(r -> keys.get(0).equals(r.key())).count() > 1);
            long started = System.nanoTime();
            long most = 0;
            while (System.nanoTime() - started < TimeUnit.SECONDS.toNanos(8)) {
                long left = c.sync().pttl(lease);
                assertTrue(left > 0, "the lease of the running trial lapsed (" + left + ")");
                most = Math.max(most, left);
                Thread.sleep(100);
            }
            assertTrue(most <= 6000, "the running trial's lease had " + most + " ms left");
            trial.join(30_000);
        }
    }
}
