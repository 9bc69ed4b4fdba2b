package io.megallm.proxy.relay;

import io.megallm.proxy.http.RequestReader;
import io.megallm.proxy.http.ResponseEncoder;
import io.megallm.proxy.http.ServerLifecycle;
import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.key.KeyClock;
import io.megallm.proxy.key.KeyPolicy;
import io.megallm.proxy.key.KeyPool;
import io.megallm.proxy.key.KeyWaiters;
import io.megallm.proxy.upstream.UpstreamPools;
import io.megallm.proxy.upstream.UpstreamSettings;
import io.megallm.proxy.upstream.UpstreamTarget;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Contract §7, waiting for a key: waiters are woken one per key that comes back. A waiter woken
 * whose client left before the wake-up ran on its loop (the hang-up and the wake-up in the same
 * turn of the loop, the hang-up first) took that one wake-up with it: the next waiter slept on
 * beside a usable key until its KEY_WAIT ran out, then got 503 no_available_keys.
 */
class KeyWaitHandOffTest {

    private static final String BODY = "{\"model\":\"m\",\"messages\":[]}";
    private static final String REQUEST = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            + "Content-Type: application/json\r\nContent-Length: " + BODY.length() + "\r\n\r\n" + BODY;

    private final AtomicLong nanos = new AtomicLong(1_000_000_000L);
    private final KeyPool keys = new KeyPool(KeyClock.of(nanos::get, System::currentTimeMillis), new KeyPolicy(60, 300, 600));
    private final ServerLifecycle lifecycle = new ServerLifecycle();
    // Nothing listens there: the test ends before any connection would matter.
    private final UpstreamPools pools = new UpstreamPools(UpstreamTarget.parse("http://127.0.0.1:20999/v1"),
            NioSocketChannel.class, new UpstreamSettings(10, 10, 1000, 60, 1));
    private EmbeddedChannel a;
    private EmbeddedChannel b;
    private EmbeddedChannel c;

    @AfterEach
    void tearDown() {
        for (EmbeddedChannel ch : new EmbeddedChannel[]{a, b, c}) {
            if (ch != null) {
                ch.finishAndReleaseAll();
            }
        }
        pools.close();
        for (EmbeddedChannel ch : new EmbeddedChannel[]{a, b, c}) {
            if (ch != null) {
                ch.runPendingTasks();
            }
        }
    }

    /** A relay whose requests wait for keys in {@code waiters}, with {@code maxKeyRetries} moves each. */
    private Relay relay(KeyWaiters waiters, int maxKeyRetries) {
        return new Relay(keys, pools, new RelaySettings(1000, 0, maxKeyRetries, 60), lifecycle, RelayEvents.NONE,
                new Relay.KeyAccess(null, waiters, TimeUnit.SECONDS.toNanos(60)));
    }

    private EmbeddedChannel client(Relay relay) {
        EmbeddedChannel ch = new EmbeddedChannel(new ResponseEncoder(),
                new RequestReader(ex -> relay.forward(ex, "/chat/completions"), 1024 * 1024, lifecycle));
        ch.writeInbound(Unpooled.copiedBuffer(REQUEST, StandardCharsets.ISO_8859_1));
        return ch;
    }

    private static String outbound(EmbeddedChannel ch) {
        StringBuilder out = new StringBuilder();
        Object o;
        while ((o = ch.readOutbound()) != null) {
            ByteBuf buf = (ByteBuf) o;
            out.append(buf.toString(StandardCharsets.ISO_8859_1));
            buf.release();
        }
        return out.toString();
    }

    @Test
    void aWakeUpThatFindsItsClientGoneGoesToTheNextWaiter() {
        keys.reload(List.of("sk-mega-handoff-test-key-0000001"));
        ApiKey key = keys.keys().get(0);
        keys.limited(key, 429, 30);
        KeyWaiters waiters = new KeyWaiters(keys, 10);
        Relay relay = relay(waiters, 0);

        a = client(relay);
        b = client(relay);
        assertEquals(2, waiters.size(), "both requests wait for the resting key");

        // The key comes back: one waiter, the oldest (A), is woken on its loop.
        keys.lifecycle().reset(key);
        // A's client hangs up; the transport delivers that before the wake-up task runs.
        a.pipeline().fireChannelInactive();
        a.runPendingTasks();
        b.runPendingTasks();

        assertEquals(0, waiters.size(), "B still waits beside a usable key");
        String bSaw = outbound(b);
        assertEquals(-1, bSaw.indexOf("no_available_keys"), bSaw);
    }

    /**
     * Found by KeyLifecycleModelTest: the woken waiter took the key that came back, then ended
     * without a key accepting its request (here its upstream could not be reached: a 502; a
     * client that leaves, a 5xx or a second 403 end it the same way). Only a success woke the
     * next waiter, so the one behind slept beside the free key until its KEY_WAIT ran out.
     */
    @Test
    void aWokenRequestThatEndsWithoutASuccessPassesTheTurnOn() {
        keys.reload(List.of("sk-mega-handoff-test-key-0000001"));
        ApiKey key = keys.keys().get(0);
        keys.limited(key, 429, 30);
        KeyWaiters waiters = new KeyWaiters(keys, 10);
        Relay relay = relay(waiters, 0);

        a = client(relay);
        b = client(relay);
        assertEquals(2, waiters.size(), "both requests wait for the resting key");

        keys.lifecycle().reset(key);
        // A is woken, takes the key, and its upstream cannot be reached (the embedded loop opens
        // no socket): 502, and no key accepted anything.
        a.runPendingTasks();
        String aSaw = outbound(a);
        assertTrue(aSaw.startsWith("HTTP/1.1 502"), aSaw);
        b.runPendingTasks();

        assertEquals(0, waiters.size(), "B still waits beside a usable key");
    }

    /**
     * Found by KeyLifecycleModelTest: two waiters that may not take the free key (each tried it)
     * passed the turn to each other for ever. A woken waiter that may not take the key goes back
     * to the front and wakes the first behind it; the one it woke did the same, and the first was
     * now behind it. The loops spun, and the request behind them that could take the key waited
     * out its KEY_WAIT.
     */
    @Test
    void twoWaitersThatMayNotTakeTheFreeKeyDoNotPassTheTurnToEachOtherForEver() {
        keys.reload(List.of("sk-mega-handoff-test-key-0000001", "sk-mega-handoff-test-key-0000002"));
        ApiKey free = keys.keys().get(0);
        ApiKey resting = keys.keys().get(1);
        keys.limited(resting, 429, 30);
        KeyWaiters waiters = new KeyWaiters(keys, 10);
        Relay relay = relay(waiters, 3);

        // A and B each try the free key (its upstream cannot be reached: the embedded loop opens no
        // socket) and wait for the resting one; they may not go back to the key they tried.
        a = client(relay);
        b = client(relay);
        for (int i = 0; i < 3; i++) {
            a.runPendingTasks();
            b.runPendingTasks();
        }
        assertEquals(2, waiters.size(), "A and B wait for the resting key");
        c = client(relay);
        int turns = 0;
        while ((a.hasPendingTasks() || b.hasPendingTasks() || c.hasPendingTasks()) && turns++ < 100) {
            a.runPendingTasks();
            b.runPendingTasks();
            c.runPendingTasks();
        }
        assertTrue(turns < 100, "the waiters wake each other for ever");
        // C tried the free key in its turn (it met the unreachable upstream too, and waits on for
        // the resting key, as A and B do).
        assertEquals(3, free.requests(), "C never got its turn on the free key");
    }

    /**
     * Found by KeyLifecycleModelTest: a request that had tried the only key and found no other
     * to move to waited out its KEY_WAIT when that key was still marked cooling although its rest
     * was over (nothing had flipped it back yet). Nothing was resting: it waited for a key it may
     * not go back to, then got the answer it had at once when the key was marked available.
     */
    @Test
    void aRequestOutOfKeysDoesNotWaitForAKeyWhoseRestIsAlreadyOver() {
        keys.reload(List.of("sk-mega-handoff-test-key-0000001"));
        ApiKey key = keys.keys().get(0);
        keys.limited(key, 429, 1);
        nanos.addAndGet(TimeUnit.SECONDS.toNanos(2));
        KeyWaiters waiters = new KeyWaiters(keys, 10);
        Relay relay = relay(waiters, 3);

        // The key's upstream cannot be reached (the embedded loop opens no socket): no key is left.
        a = client(relay);
        a.runPendingTasks();

        assertEquals(0, waiters.size(), "waits for a key that is back already");
        String aSaw = outbound(a);
        assertTrue(aSaw.startsWith("HTTP/1.1 502"), aSaw);
    }

    /**
     * Found by KeyLifecycleModelTest: the woken waiter took the key that came back, met a failure
     * that is not the key's (here an unreachable upstream; a 5xx the same) and went back to wait
     * for another, resting key, leaving the free key it may not take again. The turn it took went
     * with it: the waiter behind, which may take the free key, slept until its KEY_WAIT ran out.
     */
    @Test
    void aWokenRequestThatWaitsAgainBesideTheFreeKeyPassesTheTurnOn() {
        keys.reload(List.of("sk-mega-handoff-test-key-0000001", "sk-mega-handoff-test-key-0000002"));
        ApiKey back = keys.keys().get(0);
        keys.limited(back, 429, 30);
        keys.limited(keys.keys().get(1), 429, 30);
        KeyWaiters waiters = new KeyWaiters(keys, 10);
        Relay relay = relay(waiters, 3);

        a = client(relay);
        b = client(relay);
        assertEquals(2, waiters.size(), "both requests wait for a resting key");

        keys.lifecycle().reset(back);
        // A takes the key that came back; its upstream cannot be reached (the embedded loop opens no
        // socket), so A waits again, for the other key.
        a.runPendingTasks();
        b.runPendingTasks();

        assertEquals(2, back.requests(), "B never got its turn on the key that came back");
    }

    /**
     * Found by KeyLifecycleModelTest: a request whose trial key was decided (here handed back
     * after no answer) kept treating moves to and from that key as free, as during its trial.
     * Going back to it after a wait, it moved past MAX_KEY_RETRIES; back to it after each of
     * several waits, past the end of the array of keys it tried (sized for MAX_KEY_RETRIES moves
     * and one trial): an exception on the event loop.
     */
    @Test
    void aKeyNoLongerOnTrialCostsAMoveLikeAnyOther() {
        keys.reload(List.of("sk-mega-handoff-test-key-0000001", "sk-mega-handoff-test-key-0000002"));
        ApiKey trial = keys.keys().get(0);
        keys.markFailed(trial, 401);
        nanos.addAndGet(TimeUnit.SECONDS.toNanos(300));
        keys.limited(keys.keys().get(1), 429, 30);
        KeyWaiters waiters = new KeyWaiters(keys, 10);
        Relay relay = relay(waiters, 0);

        // A takes the trial; no answer (the embedded loop opens no socket) hands it back, free, and
        // A waits for the resting key.
        a = client(relay);
        a.runPendingTasks();
        assertEquals(1, waiters.size(), "A waits for the resting key");
        // The failed key is back (reset): A goes back to it, an ordinary key now, and fails there.
        keys.lifecycle().reset(trial);
        a.runPendingTasks();

        assertEquals(2, trial.requests());
        assertEquals(0, waiters.size(), "leaving the key is a move, and MAX_KEY_RETRIES=0 allows none");
        String aSaw = outbound(a);
        assertTrue(aSaw.startsWith("HTTP/1.1 502"), aSaw);
    }

    /**
     * Found by KeyLifecycleModelTest: a key came back and woke the oldest waiter, which may not
     * take it (it tried it) and had nothing left to wait for, so it ended instead of waiting on.
     * The turn ended with it: the waiter behind, which may take the key, slept until its KEY_WAIT
     * ran out.
     */
    @Test
    void aWokenWaiterThatGivesUpPassesTheTurnOn() {
        keys.reload(List.of("sk-mega-handoff-test-key-0000001", "sk-mega-handoff-test-key-0000002"));
        ApiKey back = keys.keys().get(0);
        ApiKey other = keys.keys().get(1);
        keys.limited(other, 429, 30);
        KeyWaiters waiters = new KeyWaiters(keys, 10);
        Relay relay = relay(waiters, 3);

        // A tries the free key (its upstream cannot be reached: the embedded loop opens no socket)
        // and waits for the resting one; then the tried key rests too, and B waits behind A.
        a = client(relay);
        a.runPendingTasks();
        keys.limited(back, 429, 30);
        b = client(relay);
        assertEquals(2, waiters.size(), "A and B wait");
        // The key A waited for fails; the one A tried comes back: A is woken, may not take it, and
        // has nothing left to wait for.
        keys.markFailed(other, 401);
        keys.lifecycle().reset(back);
        a.runPendingTasks();
        assertTrue(outbound(a).startsWith("HTTP/1.1 502"));
        b.runPendingTasks();

        assertEquals(2, back.requests(), "B never got its turn on the key that came back");
    }

    /**
     * A waiter that declined a turn (every key usable then was one it had tried) was passed over
     * by every later turn handed along the queue, also when a key it had not tried came back.
     * Here W tried A and B, D only A; both decline A, W in front. Then B returns: W is woken, may
     * not take it, and hands the turn on past D, which slept beside B until its KEY_WAIT ran out.
     */
    @Test
    void aTurnHandedOnReachesAWaiterThatDeclinedAnEarlierKey() {
        List<String> list = List.of("sk-mega-handoff-test-key-0000001", "sk-mega-handoff-test-key-0000002",
                "sk-mega-handoff-test-key-0000003");
        keys.reload(list);
        ApiKey first = keys.keys().get(0);
        ApiKey back = keys.keys().get(1);
        keys.limited(keys.keys().get(2), 429, 40);
        KeyWaiters waiters = new KeyWaiters(keys, 10);
        Relay relay = relay(waiters, 3);

        // W tries A and B (their upstream cannot be reached: the embedded loop opens no socket) and
        // waits for the resting key; D queues behind it.
        a = client(relay);
        assertEquals(1, back.requests(), "W tried B");
        b = client(relay);
        // B rests before D's turn: D tries only A, and both wait on, having declined A.
        keys.limited(back, 429, 30);
        runAll();
        assertEquals(2, first.requests(), "D tried A");
        assertEquals(2, waiters.size(), "W and D wait");
        // A reload wakes both; D looks first, W after it: W is in front.
        keys.reload(list);
        b.runPendingTasks();
        a.runPendingTasks();
        runAll();
        assertEquals(2, waiters.size(), "W and D wait on");

        // B comes back: W may not take it; D may, and must get the turn.
        keys.lifecycle().reset(back);
        runAll();

        assertEquals(2, back.requests(), "D never got its turn on the key it had not tried");
    }

    /**
     * A key back from its second rest in a row takes one request at a time, its probe. README:
     * "An answer that frees the probe wakes a waiting request at once, also a failure that is not
     * the key's (a 5xx, a 403 not yet blamed, no answer)". A probe that got no answer (its upstream
     * could not be reached) kept the probe held: the request moved on, and the request behind it
     * slept beside the key until the probe's 5-s lease ran out.
     */
    @Test
    void aProbeThatGotNoAnswerLetsTheNextRequestTakeTheKey() {
        keys.reload(List.of("sk-mega-handoff-test-key-0000001", "sk-mega-handoff-test-key-0000002"));
        ApiKey probed = keys.keys().get(0);
        keys.limited(keys.keys().get(1), 429, 30);
        for (int i = 0; i < 2; i++) {
            keys.recordAttempt(probed);
            keys.limited(probed, 429, 1);
            nanos.addAndGet(TimeUnit.SECONDS.toNanos(1));
        }
        KeyWaiters waiters = new KeyWaiters(keys, 10);
        Relay relay = relay(waiters, 3);

        // R probes the key; its upstream cannot be reached (the embedded loop opens no socket), and
        // R, which may not go back to it, waits for the resting key. W comes next.
        a = client(relay);
        assertEquals(3, probed.requests(), "R took the probe");
        assertEquals(1, waiters.size(), "R waits for the resting key");
        b = client(relay);
        runAll();

        assertEquals(4, probed.requests(), "W slept beside the key whose probe got no answer");
    }

    private void runAll() {
        for (int i = 0; i < 10 && (a.hasPendingTasks() || b.hasPendingTasks()); i++) {
            a.runPendingTasks();
            b.runPendingTasks();
        }
    }
}
