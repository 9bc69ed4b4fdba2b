package io.megallm.proxy.key;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Contract §7, retry budget: RETRY_BUDGET percent of the last 10 s of requests, plus RETRY_BUDGET_MIN a second. */
class RetryBudgetTest {

    private final AtomicLong nanos = new AtomicLong(123_456_789L);

    private void advanceSeconds(long s) {
        nanos.addAndGet(TimeUnit.SECONDS.toNanos(s));
    }

    private static int retriesAllowed(RetryBudget budget, int attempts) {
        int allowed = 0;
        for (int i = 0; i < attempts; i++) {
            if (budget.tryRetry()) {
                allowed++;
            }
        }
        return allowed;
    }

    @Test
    void withNoRequestsOnlyTheMinimumOfThisSecondIsAllowed() {
        RetryBudget budget = new RetryBudget(20, 10, nanos::get);
        assertEquals(10, retriesAllowed(budget, 1000), "10 a second, not the window's 100 at once");
        assertEquals(1000 - 10, budget.refused());
        advanceSeconds(1);
        assertEquals(10, retriesAllowed(budget, 1000), "the next second has its own 10");
    }

    @Test
    void anIdleMinimumDoesNotAccumulate() {
        RetryBudget budget = new RetryBudget(20, 10, nanos::get);
        advanceSeconds(9);
        assertEquals(10, retriesAllowed(budget, 1000), "nine idle seconds leave one second's worth");
    }

    /**
     * The audit's load: 2 requests a second against an upstream that always fails, each wanting
     * every retry (4 keys, 3 retries each). The minimum let the window's 100 go in the first
     * seconds: 26-32 upstream hits a second for 2 offered.
     */
    @Test
    void aLowSteadyLoadGetsTheMinimumAndItsPercentEverySecondNeverTheWindowsWorthAtOnce() {
        RetryBudget budget = new RetryBudget(20, 10, nanos::get);
        for (int s = 0; s < 20; s++) {
            int thisSecond = 0;
            for (int i = 0; i < 2; i++) {
                budget.onRequest();
                for (int r = 0; r < 15 && budget.tryRetry(); r++) {
                    thisSecond++;
                }
            }
            // At most 20 requests in the window: 20 % of them is 4, plus the minimum of 10.
            assertTrue(thisSecond <= 10 + 4, thisSecond + " retries in second " + s);
            advanceSeconds(1);
        }
    }

    @Test
    void retriesAddAtMostThePercentOfTheRequestsOfTheLastTenSeconds() {
        RetryBudget budget = new RetryBudget(20, 0, nanos::get);
        for (int s = 0; s < 10; s++) {
            for (int i = 0; i < 100; i++) {
                budget.onRequest();
            }
            advanceSeconds(1);
        }
        // 900 requests are in the window (the current second is empty): 20 % is 180.
        assertEquals(180, retriesAllowed(budget, 10_000));
        assertFalse(budget.tryRetry());
    }

    @Test
    void aStormOfFailuresNeverMultipliesTheOfferedLoad() {
        RetryBudget budget = new RetryBudget(20, 10, nanos::get);
        long requests = 0;
        long retries = 0;
        for (int s = 0; s < 60; s++) {
            for (int i = 0; i < 1000; i++) {
                budget.onRequest();
                requests++;
                // Every attempt fails and wants all three same-key retries.
                for (int r = 0; r < 3 && budget.tryRetry(); r++) {
                    retries++;
                }
            }
            advanceSeconds(1);
        }
        assertTrue(retries <= requests * 20 / 100 + 60 * 10, retries + " retries for " + requests + " requests");
        assertTrue(retries >= requests * 20 / 100, "the percent is there to be used: " + retries);
    }

    @Test
    void secondsThatLeftTheWindowNoLongerCount() {
        RetryBudget budget = new RetryBudget(100, 0, nanos::get);
        for (int i = 0; i < 50; i++) {
            budget.onRequest();
        }
        assertEquals(50, retriesAllowed(budget, 100));
        advanceSeconds(9);
        assertFalse(budget.tryRetry(), "still in the window");
        advanceSeconds(1);
        assertFalse(budget.tryRetry(), "requests and retries left the window together: nothing to spend");
        budget.onRequest();
        assertTrue(budget.tryRetry());
    }

    @Test
    void zeroBudgetAndZeroMinimumRefuseEveryRetry() {
        RetryBudget budget = new RetryBudget(0, 0, nanos::get);
        budget.onRequest();
        assertFalse(budget.tryRetry());
        assertEquals(1, budget.refused());
    }

    @Test
    void racingLoopsNeverTakeMoreThanTheBudget() throws Exception {
        RetryBudget budget = new RetryBudget(10, 0, nanos::get);
        for (int i = 0; i < 1000; i++) {
            budget.onRequest();
        }
        int threads = 8;
        AtomicInteger taken = new AtomicInteger();
        CountDownLatch go = new CountDownLatch(1);
        List<Thread> all = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            Thread th = new Thread(() -> {
                try {
                    go.await();
                } catch (InterruptedException e) {
                    return;
                }
                for (int i = 0; i < 1000; i++) {
                    if (budget.tryRetry()) {
                        taken.incrementAndGet();
                    }
                }
            });
            th.start();
            all.add(th);
        }
        go.countDown();
        for (Thread th : all) {
            th.join();
        }
        assertTrue(taken.get() <= 100, taken + " retries taken");
        assertEquals(threads * 1000L - taken.get(), budget.refused());
    }
}
