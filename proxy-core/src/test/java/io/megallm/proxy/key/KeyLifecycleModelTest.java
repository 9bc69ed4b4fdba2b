package io.megallm.proxy.key;

import io.netty.channel.EventLoop;
import io.netty.channel.embedded.EmbeddedChannel;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * A model of the key lifecycle (contract §7, README "The key lifecycle") run against the real
 * KeyPool, KeySelector and KeyWaiters through random sequences on an injected clock: requests
 * that pick keys the way RelayCall does, upstream answers, client hang-ups, clock advances,
 * reloads and resets. After every step the pool's states must be the model's, no key is handed
 * out against the rules (a failed key only as its due trial, one claim per lease; a resting key
 * not before its rest ends; never back to a tried key without a wait for it), KeyWaiters counts
 * exactly the requests that wait, wake-ups end within a step, and no waiter sleeps beside a key
 * it may take while no request in flight holds the turn that would wake it. The driver's
 * {@code Req} repeats RelayCall's key handling (pick, switch, awaitKey, the wake-up callbacks):
 * a change there belongs here too. Fixed seeds: a failure prints the seed and the steps.
 */
class KeyLifecycleModelTest {

    private static final long SECOND = TimeUnit.SECONDS.toNanos(1);
    private static final long COOLDOWN = 8;
    private static final long RECHECK = 5;
    private static final long LEASE = 3;
    private static final long KEY_WAIT = 4 * SECOND;
    private static final int MAX_WAITERS = 3;
    private static final int MAX_KEY_RETRIES = 3;
    private static final String[] UNIVERSE = {
        "sk-test-aaaaaaaaaaaaaaaa0001", "sk-test-bbbbbbbbbbbbbbbb0002", "sk-test-cccccccccccccccc0003",
        "sk-test-dddddddddddddddd0004", "sk-test-eeeeeeeeeeeeeeee0005", "sk-test-ffffffffffffffff0006",
    };

    @Test
    void randomSequencesFollowTheModel() {
        for (long seed = 1; seed <= 300; seed++) {
            new Run(seed).go(250);
        }
    }

    /** What the contract says one key's state is. */
    private static final class Expected {
        KeyState.Kind kind = KeyState.Kind.AVAILABLE;
        long until;
        int strikes;
        long recheck;
        boolean onTrial;

        boolean usable(long now) {
            return kind == KeyState.Kind.AVAILABLE || (kind == KeyState.Kind.COOLING_DOWN && now - until >= 0);
        }

        @Override
        public String toString() {
            return kind + (onTrial ? "(trial)" : "") + " until=" + until + " strikes=" + strikes + " recheck=" + recheck;
        }
    }

    private enum Phase { IN_FLIGHT, WAITING, DONE }

    private final class Run {
        final long seed;
        final Random rnd;
        final AtomicLong nanos = new AtomicLong(1_000_000_000L);
        final EmbeddedChannel channel = new EmbeddedChannel();
        final EventLoop loop;
        final KeyPool pool;
        final KeySelector selector;
        final KeyWaiters waiters;
        final Map<ApiKey, Expected> model = new HashMap<>();
        final List<Req> requests = new ArrayList<>();
        final List<String> log = new ArrayList<>();
        int nextId;

        Run(long seed) {
            this.seed = seed;
            this.rnd = new Random(seed);
            channel.freezeTime();
            loop = channel.eventLoop();
            pool = new KeyPool(KeyClock.of(nanos::get, System::currentTimeMillis), new KeyPolicy(COOLDOWN, RECHECK, LEASE));
            selector = new KeySelector(pool);
            waiters = new KeyWaiters(pool, MAX_WAITERS);
            reload();
        }

        long now() {
            return nanos.get();
        }

        void go(int steps) {
            try {
                for (int i = 0; i < steps; i++) {
                    callbacks = 0;
                    stepStart = log.size();
                    step();
                    settle();
                    check();
                }
            } catch (AssertionError | RuntimeException e) {
                int to = Math.min(log.size(), stepStart + 12);
                int from = Math.max(0, to - 40);
                fail("seed " + seed + ": " + e.getMessage() + "\nsteps:\n  "
                        + String.join("\n  ", log.subList(from, to)), e);
            } finally {
                channel.finishAndReleaseAll();
            }
        }

        int callbacks;
        int stepStart;

        void note(String s) {
            if (++callbacks > 5_000) {
                fail("no end of wake-ups within one step (waiters waking one another for ever?)");
            }
            checkStates();
            log.add((now() - 1_000_000_000L) / 1_000_000 + "ms " + s);
        }

        String name(ApiKey k) {
            return k == null ? "none" : k.masked().substring(k.masked().length() - 1);
        }

        ApiKey[] keys() {
            return pool.snapshot();
        }

        Expected exp(ApiKey k) {
            return model.get(k);
        }

        // ---- steps ------------------------------------------------------------------------------

        void step() {
            int r = rnd.nextInt(100);
            List<Req> inFlight = requests.stream().filter(q -> q.phase == Phase.IN_FLIGHT).toList();
            if (r < 30) {
                Req q = new Req(nextId++);
                requests.add(q);
                note("request " + q.id + " arrives");
                q.start();
            } else if (r < 65 && !inFlight.isEmpty()) {
                Req q = inFlight.get(rnd.nextInt(inFlight.size()));
                q.answer(randomOutcome());
            } else if (r < 70) {
                List<Req> live = requests.stream().filter(q -> q.phase != Phase.DONE).toList();
                if (!live.isEmpty()) {
                    Req q = live.get(rnd.nextInt(live.size()));
                    note("request " + q.id + " client leaves");
                    q.done();
                }
            } else if (r < 90) {
                long ms = rnd.nextInt(4) == 0 ? rnd.nextInt(6000) : rnd.nextInt(1200);
                note("advance " + ms + "ms");
                advance(TimeUnit.MILLISECONDS.toNanos(ms));
            } else if (r < 96) {
                reload();
            } else {
                note("reset");
                pool.resetFailed();
                for (ApiKey k : keys()) {
                    model.put(k, new Expected());
                }
            }
            requests.removeIf(q -> q.phase == Phase.DONE);
        }

        int randomOutcome() {
            int[] outcomes = {200, 200, 200, 400, 401, 402, 403, 429, 429, -429, 500, 503, 0};
            return outcomes[rnd.nextInt(outcomes.length)];
        }

        void advance(long n) {
            nanos.addAndGet(n);
            channel.advanceTimeBy(n, TimeUnit.NANOSECONDS);
        }

        void settle() {
            for (int i = 0; i < 100; i++) {
                channel.runScheduledPendingTasks();
                channel.runPendingTasks();
                if (!channel.hasPendingTasks()) {
                    return;
                }
            }
            fail("the loop never settles (waiters waking one another for ever?)");
        }

        void reload() {
            List<String> next = new ArrayList<>();
            int n = 1 + rnd.nextInt(5);
            List<String> all = new ArrayList<>(List.of(UNIVERSE));
            java.util.Collections.shuffle(all, rnd);
            for (int i = 0; i < n; i++) {
                next.add(all.get(i));
            }
            note("reload " + next.stream().map(s -> s.substring(s.length() - 1)).toList());
            pool.reload(next);
            Map<ApiKey, Expected> kept = new HashMap<>();
            for (ApiKey k : keys()) {
                kept.put(k, model.getOrDefault(k, new Expected()));
            }
            model.clear();
            model.putAll(kept);
        }

        // ---- the model's transitions (contract §7, README) -----------------------------------------

        void accepted(ApiKey k) {
            Expected e = exp(k);
            if (e == null) {
                return;
            }
            switch (e.kind) {
                case AVAILABLE -> e.strikes = 0;
                case COOLING_DOWN -> {
                    if (e.usable(now())) {
                        e.kind = KeyState.Kind.AVAILABLE;
                    }
                    e.strikes = 0;
                }
                case FAILED -> {
                    if (e.onTrial) {
                        model.put(k, new Expected());
                    }
                }
            }
        }

        void rejected(ApiKey k) {
            Expected e = exp(k);
            if (e == null) {
                return;
            }
            if (e.kind == KeyState.Kind.FAILED) {
                if (e.onTrial) {
                    failedTrial(e);
                }
                return;
            }
            e.kind = KeyState.Kind.FAILED;
            e.strikes = 0;
            e.onTrial = false;
            e.recheck = RECHECK * SECOND;
            e.until = now() + e.recheck;
        }

        void failedTrial(Expected e) {
            e.onTrial = false;
            e.recheck = Math.min(e.recheck * 2, TimeUnit.DAYS.toNanos(1));
            e.until = now() + e.recheck;
        }

        void limited(ApiKey k, long retryAfter) {
            Expected e = exp(k);
            if (e == null) {
                return;
            }
            if (e.kind == KeyState.Kind.FAILED) {
                if (e.onTrial) {
                    failedTrial(e);
                }
                return;
            }
            if (e.kind == KeyState.Kind.COOLING_DOWN && !e.usable(now())) {
                // A late 429 for a request sent before the rest: only a later Retry-After counts.
                if (retryAfter >= 0 && now() + retryAfter * SECOND - e.until > 0) {
                    e.until = now() + retryAfter * SECOND;
                }
                return;
            }
            e.strikes = Math.min(e.strikes + 1, 62);
            long rest = retryAfter >= 0 ? retryAfter : Math.min(1L << (e.strikes - 1), COOLDOWN);
            e.kind = KeyState.Kind.COOLING_DOWN;
            e.until = now() + rest * SECOND;
        }

        void abandoned(ApiKey k) {
            Expected e = exp(k);
            if (e != null && e.onTrial) {
                e.onTrial = false;
                e.until = now();
            }
        }

        // ---- invariants ---------------------------------------------------------------------------

        void check() {
            checkStates();
            checkRequests();
        }

        void checkStates() {
            for (ApiKey k : keys()) {
                Expected e = exp(k);
                KeyState s = k.state();
                boolean same = s.kind() == e.kind && s.onTrial() == e.onTrial && s.strikes() == e.strikes
                        && (e.kind == KeyState.Kind.AVAILABLE || s.untilNanos() == e.until)
                        && (e.kind != KeyState.Kind.FAILED || s.recheckNanos() == e.recheck);
                if (!same) {
                    fail("key " + name(k) + " is " + s.kind() + (s.onTrial() ? "(trial)" : "") + " until="
                            + s.untilNanos() + " strikes=" + s.strikes() + " recheck=" + s.recheckNanos()
                            + ", the model says " + e);
                }
            }
        }

        void checkRequests() {
            long now = now();
            int waiting = 0;
            for (Req q : requests) {
                if (q.phase == Phase.WAITING) {
                    waiting++;
                }
            }
            if (waiters.size() != waiting) {
                fail("KeyWaiters counts " + waiters.size() + " waiters, " + waiting + " requests wait");
            }
            // No waiter sleeps beside a key it may take with nothing to wake it: a returning key wakes
            // one waiter and each success the next (README), so a request in flight holds the turn.
            boolean turnHeld = requests.stream().anyMatch(q -> q.phase == Phase.IN_FLIGHT);
            for (Req q : turnHeld ? List.<Req>of() : requests) {
                if (q.phase != Phase.WAITING) {
                    continue;
                }
                for (ApiKey k : keys()) {
                    if (pool.takeableNow(k) && !q.avoidsAfterWait(k)) {
                        fail("request " + q.id + " waits while key " + name(k) + " is free for it");
                    }
                }
            }
        }

        void handedOut(ApiKey k, Req q, boolean trial) {
            Expected e = exp(k);
            if (e == null) {
                fail("key " + name(k) + " handed out but not in the pool");
            }
            if (trial) {
                // Due, and not claimed by a request whose lease still runs: one trial at a time.
                if (e.kind != KeyState.Kind.FAILED || e.recheck == 0 || now() - e.until < 0) {
                    fail("trial of key " + name(k) + " not due: " + e);
                }
                e.onTrial = true;
                e.until = now() + LEASE * SECOND;
                return;
            }
            if (!e.usable(now())) {
                fail("key " + name(k) + " handed out to request " + q.id + " while " + e);
            }
        }

        // ---- a request, picking keys as RelayCall does -----------------------------------------------

        private final class Req implements KeyWaiters.Callback {
            final int id;
            final ApiKey[] tried = new ApiKey[MAX_KEY_RETRIES + 3];
            int triedCount;
            int avoidFrom;
            int returnable;
            ApiKey trialKey;
            boolean trialPassed;
            boolean trialLeft;
            ApiKey key;
            ApiKey forbidden;
            int switches;
            Phase phase = Phase.IN_FLIGHT;
            KeyWaiters.Waiter waiter;
            long waitDeadline;
            boolean waitStarted;
            boolean waitIsSwitch;
            boolean holdsTurn;

            Req(int id) {
                this.id = id;
            }

            void start() {
                if (waiters.size() > 0 && pool.nanosUntilNextUsable() >= 0) {
                    KeyWaiters.Waiter w = waiters.await(loop, KEY_WAIT, this);
                    if (w != null) {
                        waitDeadline = now() + KEY_WAIT;
                        waiting(w, false);
                        note("request " + id + " queues behind the waiters");
                        return;
                    }
                }
                ApiKey first = pick();
                if (first == null) {
                    awaitKey(false, false);
                    return;
                }
                use(first);
            }

            void waiting(KeyWaiters.Waiter w, boolean isSwitch) {
                waitStarted = true;
                waiter = w;
                waitIsSwitch = isSwitch;
                phase = Phase.WAITING;
            }

            /** Whether this waiting request may not take {@code k} once woken. */
            boolean avoidsAfterWait(ApiKey k) {
                for (int i = returnable; i < triedCount; i++) {
                    if (tried[i] == k) {
                        return true;
                    }
                }
                return false;
            }

            ApiKey pick() {
                if (trialKey == null) {
                    ApiKey t = selector.trial(tried, triedCount);
                    if (t != null) {
                        handedOut(t, this, true);
                        trialKey = t;
                        return t;
                    }
                }
                ApiKey next = selector.next(tried, avoidFrom, triedCount, 0);
                if (next != null) {
                    handedOut(next, this, false);
                    for (int i = avoidFrom; i < triedCount; i++) {
                        if (tried[i] == next) {
                            fail("request " + id + " went back to key " + name(next) + " without waiting for it");
                        }
                    }
                }
                return next;
            }

            void use(ApiKey next) {
                key = next;
                tried[triedCount++] = next;
                phase = Phase.IN_FLIGHT;
                note("request " + id + " sends with " + name(next) + (next == trialKey ? " (trial)" : "")
                        + " [switches " + switches + ", tried " + triedCount + "]");
                pool.recordAttempt(next);
            }

            boolean onTrial() {
                return key != null && key == trialKey && key.state().onTrial();
            }

            boolean freeMove(ApiKey k) {
                return k == trialKey && !trialPassed && !trialLeft;
            }

            void answer(int status) {
                note("request " + id + " key " + name(key) + " answers " + status);
                boolean trial = onTrial();
                switch (status) {
                    case 200, 400 -> {
                        if (forbidden != null && status < 400) {
                            pool.markFailed(forbidden, 403);
                            rejected(forbidden);
                        }
                        holdsTurn = false;
                        pool.recordSuccess(key, status);
                        accepted(key);
                        waiters.served();
                        finish();
                    }
                    case 401, 402 -> {
                        pool.markFailed(key, status);
                        rejected(key);
                        switchKey();
                    }
                    case 403 -> {
                        if (trial) {
                            pool.markFailed(key, status);
                            rejected(key);
                            switchKey();
                        } else {
                            pool.recordTransient(key, status);
                            if (forbidden == null) {
                                forbidden = key;
                                switchKey();
                            } else {
                                finish();
                            }
                        }
                    }
                    case 429, -429 -> {
                        long ra = status == 429 ? -1 : rnd.nextInt(4);
                        pool.limited(key, 429, ra);
                        limited(key, ra);
                        switchKey();
                    }
                    case 500, 503 -> {
                        pool.recordTransient(key, status);
                        // Any request's answer decides a running trial (the pool knows no owner):
                        // with KEY_RECHECK above MEGALLM_TIMEOUT none sent before the failure is left.
                        Expected e = exp(key);
                        if (e != null && e.onTrial) {
                            accepted(key);
                        }
                        if (trial) {
                            trialPassed = true;
                        }
                        switchKey();
                    }
                    default -> {
                        // No answer at all (connect failure), retries spent.
                        if (trial) {
                            pool.recordTransient(key, 0);
                            abandoned(key);
                        } else {
                            pool.recordUnanswered(key);
                        }
                        switchKey();
                    }
                }
            }

            void switchKey() {
                boolean counts = !freeMove(key);
                if (key == trialKey) {
                    trialLeft = true;
                }
                if (counts && switches >= MAX_KEY_RETRIES) {
                    note("request " + id + " out of moves");
                    finish();
                    return;
                }
                ApiKey next = pick();
                if (next == null) {
                    awaitKey(counts, false);
                    return;
                }
                if (counts && !freeMove(next)) {
                    switches++;
                }
                use(next);
            }

            void awaitKey(boolean isSwitch, boolean keepPlace) {
                if (waitDeadline == 0) {
                    waitDeadline = now() + KEY_WAIT;
                }
                long left = waitDeadline - now();
                long untilUsable = pool.nanosUntilRestEnds();
                if (untilUsable < 0 || untilUsable > left) {
                    if (waitStarted) {
                        note("request " + id + " gives up waiting");
                        finish();
                        return;
                    }
                    ApiKey unpaced = selector.next(tried, avoidFrom, triedCount, 0, false);
                    if (unpaced == null) {
                        note("request " + id + " gets 503");
                        finish();
                        return;
                    }
                    handedOut(unpaced, this, false);
                    if (isSwitch && !freeMove(unpaced)) {
                        switches++;
                    }
                    use(unpaced);
                    return;
                }
                if (!waitStarted) {
                    returnable = restingFirst();
                }
                int avoided = 0;
                for (int i = avoidFrom; i < triedCount; i++) {
                    if (pool.takeableNow(tried[i])) {
                        avoided++;
                    }
                }
                KeyWaiters.Waiter w = waiters.await(loop, left, this, keepPlace, avoided);
                if (w == null) {
                    note("request " + id + " finds the wait full");
                    finish();
                    return;
                }
                note("request " + id + " waits" + (keepPlace ? " again, in front" : ""));
                if (keepPlace && avoided > 0) {
                    waiters.wakeBehind(w);
                } else if (holdsTurn && avoided > 0) {
                    waiters.wake(1);
                }
                holdsTurn = false;
                waiting(w, isSwitch);
            }

            int restingFirst() {
                int at = avoidFrom;
                for (int i = avoidFrom; i < triedCount; i++) {
                    if (!pool.takeableNow(tried[i])) {
                        ApiKey k = tried[at];
                        tried[at++] = tried[i];
                        tried[i] = k;
                    }
                }
                return at;
            }

            @Override
            public void keyMayBeUsable() {
                if (phase != Phase.WAITING) {
                    waiters.wake(1);
                    return;
                }
                note("request " + id + " woken");
                waiter = null;
                holdsTurn = true;
                if (!takeKeyAfterWait()) {
                    awaitKey(waitIsSwitch, true);
                }
            }

            boolean takeKeyAfterWait() {
                avoidFrom = returnable;
                ApiKey next = pick();
                if (next == null) {
                    return false;
                }
                waitStarted = false;
                holdsTurn = true;
                if (waitIsSwitch && !freeMove(next)) {
                    switches++;
                }
                use(next);
                return true;
            }

            @Override
            public void waitOver() {
                if (phase != Phase.WAITING) {
                    return;
                }
                note("request " + id + " wait over");
                waiter = null;
                if (takeKeyAfterWait()) {
                    return;
                }
                finish();
            }

            void finish() {
                done();
            }

            void done() {
                if (phase == Phase.DONE) {
                    return;
                }
                phase = Phase.DONE;
                if (waiter != null) {
                    waiter.cancel();
                    waiter = null;
                }
                if (holdsTurn) {
                    holdsTurn = false;
                    waiters.served();
                }
                if (onTrial()) {
                    pool.lifecycle().abandonTrial(key);
                    abandoned(key);
                }
            }
        }
    }
}
