package io.megallm.proxy.key;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertSame;

/**
 * Contract §7: a failed key gets its trial KEY_RECHECK after it failed. KeySelector skips the
 * trial scan until the earliest due trial it saw ({@code noTrialBefore}); a key that fails on one
 * event loop while another loop's scan is under way must not be left out of that gate, or its
 * trial waits for the scan's "nothing due" answer: a day.
 */
class TrialScanRaceTest {

    @Test
    void aKeyThatFailsDuringAnotherLoopsTrialScanStillGetsItsTrialAfterKeyRecheck() throws Exception {
        AtomicLong nanos = new AtomicLong(1_000_000_000_000L);
        AtomicLong wall = new AtomicLong(1_800_000_000_000L);
        KeyPool pool = new KeyPool(KeyClock.of(nanos::get, wall::get), new KeyPolicy(60, 300, 600));
        List<String> secrets = new ArrayList<>();
        for (int i = 0; i < 20_000; i++) {
            secrets.add("sk-mega-race-" + i + "-0123456789abcdef");
        }
        pool.reload(secrets);
        KeySelector selector = new KeySelector(pool);
        KeyLifecycle life = pool.lifecycle();
        ApiKey first = pool.keys().get(0);
        ApiKey[] none = new ApiKey[0];

        for (int round = 0; round < 300; round++) {
            // Every key available, and the gate open (a reload opens it): the next call scans.
            life.reset(first);
            pool.reload(secrets);
            AtomicBoolean go = new AtomicBoolean();
            AtomicBoolean started = new AtomicBoolean();
            CompletableFuture<ApiKey> scan = new CompletableFuture<>();
            Thread other = new Thread(() -> {
                started.set(true);
                while (!go.get()) {
                    Thread.onSpinWait();
                }
                // The other loop: nothing due yet, so it scans every key and closes the gate.
                scan.complete(selector.trial(none, 0));
            });
            other.start();
            while (!started.get()) {
                Thread.onSpinWait();
            }
            go.set(true);
            // This loop: the first key of the scan is refused while the scan goes through the rest.
            long spinUntil = System.nanoTime() + TimeUnit.MICROSECONDS.toNanos(round % 20);
            while (System.nanoTime() - spinUntil < 0) {
                Thread.onSpinWait();
            }
            life.rejected(first, 401);
            scan.get(10, TimeUnit.SECONDS);

            nanos.addAndGet(TimeUnit.SECONDS.toNanos(300));
            wall.addAndGet(TimeUnit.SECONDS.toMillis(300));
            assertSame(first, selector.trial(none, 0), "round " + round
                    + ": the key failed 300 s ago (KEY_RECHECK) and got no trial: the racing scan's gate hid it");
            life.accepted(first, 200);
        }
    }
}
