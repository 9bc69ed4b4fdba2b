package io.megallm.proxy.server.shared;

import io.lettuce.core.KeyScanCursor;
import io.lettuce.core.RedisClient;
import io.lettuce.core.ScanCursor;
import io.lettuce.core.api.StatefulRedisConnection;
import io.lettuce.core.pubsub.RedisPubSubAdapter;
import io.lettuce.core.pubsub.StatefulRedisPubSubConnection;
import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.key.KeyClock;
import io.megallm.proxy.key.KeyPolicy;
import io.megallm.proxy.key.KeyPool;
import io.megallm.proxy.key.KeyState;
import io.megallm.proxy.server.config.RedisUrl;
import io.megallm.proxy.server.keys.KeyFile;
import io.megallm.proxy.server.testing.LocalRedis;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * A model of the key states shared through Redis (contract §14, README "Several instances") run
 * against real instances: each a KeyPool with its KeyFile and RedisKeyStates, wired as ProxyServer
 * wires them, on one injected clock, against one real redis-server. Random sequences of what the
 * relay reports (401, 429 with and without Retry-After, success), trials run under the lease,
 * resets, key file reloads, Redis killed and started again empty, an instance starting late.
 * After each step the instances must agree with the model: every instance (and Redis) holds the
 * state the rules say, a failure is not forgotten by an "available" that is no recovery made
 * after it, of two deadlines the later wins, at most one instance may start a key's trial, a
 * reload reaches every instance, nothing in Redis or on its channel holds a key, and what was
 * learnt while Redis was away is merged when it returns. Fixed seeds: a failure prints the seed,
 * the steps and every view.
 */
class SharedKeyStatesModelTest {

    private static final long SECOND = TimeUnit.SECONDS.toNanos(1);
    private static final long COOLDOWN = 8;
    private static final long RECHECK = 5;
    private static final long SETTLE_MILLIS = 8000;
    private static final String[] UNIVERSE = {
        "sk-test-aaaaaaaaaaaaaaaa0001", "sk-test-bbbbbbbbbbbbbbbb0002", "sk-test-cccccccccccccccc0003",
        "sk-test-dddddddddddddddd0004", "sk-test-eeeeeeeeeeeeeeee0005",
    };

    @TempDir
    Path dir;

    @Test
    void randomSequencesFollowTheModel() throws Exception {
        RedisKeyStates.useNioTransport();
        // -DsharedModel.seeds=5-40 explores further; the build runs the first four.
        String[] range = System.getProperty("sharedModel.seeds", "1-4").split("-");
        for (long seed = Long.parseLong(range[0]); seed <= Long.parseLong(range[1]); seed++) {
            try (Run run = new Run(seed, dir.resolve("seed" + seed))) {
                run.go(40);
            }
        }
    }

    /**
     * Found by the model: an operator's reset on an instance cut from Redis lost, once it was back,
     * to the failure Redis still held from before the reset. The instance published all its states
     * again as they were, the reset as a plain "available", and a failure is not forgotten for an
     * "available" that is no recovery: the key went out again, on that instance too, until its
     * trial (README "Merging": a recovery made after a failure clears it, "the same for an
     * instance back after a network cut").
     */
    @Test
    void aResetMadeWhileCutFromRedisWinsOverTheOlderFailureOnceBack() throws Exception {
        RedisKeyStates.useNioTransport();
        try (Run run = new Run(0, dir.resolve("reset-cut"))) {
            Node a = run.nodes.get(0);
            Node b = run.nodes.get(1);
            String key = UNIVERSE[0];
            a.pool.lifecycle().rejected(a.key(key), 401);
            run.await("B learns the failure", () -> b.key(key).state().kind() == KeyState.Kind.FAILED);
            run.cutOff(a);
            run.advance(1000);
            a.pool.resetFailed();
            run.advance(1000);
            run.heal(a);
            run.await("both keep the reset made after the failure",
                    () -> b.key(key).state().kind() == KeyState.Kind.AVAILABLE
                            && a.key(key).state().kind() == KeyState.Kind.AVAILABLE);
        }
    }

    /**
     * Found by the model (seed 29): an instance started after another instance's reset, while that
     * one was cut from Redis, took the older failure from Redis' answer to its own merge and dated
     * it to the moment it took it. When the reset arrived, it was older than that date and ignored
     * ("my own state is newer"): the new instance kept the key failed while Redis and the others
     * had it back in rotation.
     */
    @Test
    void anInstanceStartedLateTakesARecoverySharedAfterItStarted() throws Exception {
        RedisKeyStates.useNioTransport();
        try (Run run = new Run(0, dir.resolve("late-recovery"))) {
            Node a = run.nodes.get(0);
            String key = UNIVERSE[0];
            a.pool.lifecycle().rejected(a.key(key), 401);
            Node b = run.nodes.get(1);
            run.await("B learns the failure", () -> b.key(key).state().kind() == KeyState.Kind.FAILED);
            run.cutOff(a);
            run.advance(1000);
            a.pool.resetFailed();
            run.advance(1000);
            run.startNode();
            Node late = run.nodes.get(2);
            run.await("the late instance takes the failure from Redis",
                    () -> late.key(key).state().kind() == KeyState.Kind.FAILED);
            run.advance(1000);
            run.heal(a);
            run.await("the late instance takes the reset shared after it started",
                    () -> late.key(key).state().kind() == KeyState.Kind.AVAILABLE
                            && a.key(key).state().kind() == KeyState.Kind.AVAILABLE);
        }
    }

    /**
     * Found by the model (seed 42): an instance back from a cut merged a failure it had learnt
     * there; Redis kept it over the rest another instance had shared since (a failure is not
     * forgotten for a rest) and published it, and that instance ignored it as older than its own
     * rest: it went on with the key once the rest ended, while Redis held it failed.
     */
    @Test
    void anOlderFailureRedisKeepsOverANewerRestReachesTheInstanceWithTheRest() throws Exception {
        RedisKeyStates.useNioTransport();
        try (Run run = new Run(0, dir.resolve("older-failure"))) {
            Node a = run.nodes.get(0);
            Node b = run.nodes.get(1);
            String key = UNIVERSE[0];
            run.cutOff(a);
            a.pool.lifecycle().rejected(a.key(key), 401);
            run.advance(1000);
            b.pool.lifecycle().limited(b.key(key), 429, 30);
            run.await("Redis has B's rest", () -> "cooling_down".equals(
                    run.c.sync().hget("megallm:{model}:key:" + id(key), "kind")));
            run.heal(a);
            run.await("Redis keeps A's failure", () -> "failed".equals(
                    run.c.sync().hget("megallm:{model}:key:" + id(key), "kind")));
            run.await("B takes the failure Redis kept", () -> b.key(key).state().kind() == KeyState.Kind.FAILED);
        }
    }

    /** What the rules say one instance's state of one key is. */
    private static final class Exp {
        KeyState.Kind kind = KeyState.Kind.AVAILABLE;
        long until;
        long recheck;
        int strikes;
        /** Epoch ms the state came about (0: never changed on any instance). */
        long at;
        /** An available state that a passed trial or a reset made. */
        boolean recovery;

        Exp copy() {
            Exp e = new Exp();
            e.kind = kind;
            e.until = until;
            e.recheck = recheck;
            e.strikes = strikes;
            e.at = at;
            e.recovery = recovery;
            return e;
        }

        @Override
        public String toString() {
            return kind + " until=" + until / 1_000_000 + "ms recheck=" + recheck / SECOND + "s strikes=" + strikes
                    + " at=" + at + (recovery ? " (recovery)" : "");
        }
    }

    private static final class Node implements AutoCloseable {
        final String name;
        final Path file;
        final KeyPool pool;
        final KeyFile keyFile;
        final RedisKeyStates shared;
        final Map<String, Exp> model = new LinkedHashMap<>();

        Node(String name, Path file, KeyClock clock, String url) {
            this.name = name;
            this.file = file;
            this.pool = new KeyPool(clock, new KeyPolicy(COOLDOWN, RECHECK, 30));
            this.keyFile = new KeyFile(file, pool);
            keyFile.loadAtStart();
            this.shared = new RedisKeyStates(RedisUrl.parse(url.replace("redis://", "redis://" + name + ":pw-" + name + "@")),
                    "model", pool, keyFile).start();
        }

        ApiKey key(String secret) {
            String id = id(secret);
            for (ApiKey k : pool.keys()) {
                if (k.id().equals(id)) {
                    return k;
                }
            }
            return null;
        }

        @Override
        public void close() {
            shared.close();
        }
    }

    static String id(String secret) {
        try {
            return SharedKeyStatesTest.sha256(secret);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    private static final class Run implements AutoCloseable {
        final long seed;
        final Random rnd;
        final Path dir;
        final AtomicLong nanos = new AtomicLong(1_000_000_000_000L);
        final AtomicLong epoch = new AtomicLong(System.currentTimeMillis());
        final KeyClock clock = KeyClock.of(nanos::get, epoch::get);
        final LocalRedis redis;
        final RedisClient client;
        final StatefulRedisConnection<String, String> c;
        final StatefulRedisPubSubConnection<String, String> sub;
        final List<String> published = new CopyOnWriteArrayList<>();
        final List<Node> nodes = new ArrayList<>();
        final List<String> secrets = new ArrayList<>(List.of(UNIVERSE[0], UNIVERSE[1], UNIVERSE[2]));
        final List<String> log = new ArrayList<>();
        boolean redisUp = true;
        int downSteps;
        /** Instances cut from Redis (their user switched off): Redis and the others go on without them. */
        final List<Node> cut = new ArrayList<>();
        /** What Redis holds of each key, by the rules. */
        final Map<String, Exp> inRedis = new HashMap<>();

        Run(long seed, Path dir) throws Exception {
            this.seed = seed;
            this.rnd = new Random(seed);
            this.dir = Files.createDirectories(dir);
            redis = LocalRedis.start();
            client = RedisClient.create(redis.url());
            c = client.connect();
            sub = client.connectPubSub();
            sub.addListener(new RedisPubSubAdapter<>() {
                @Override
                public void message(String channel, String message) {
                    published.add(message);
                }
            });
            sub.sync().subscribe("megallm:{model}:events");
            for (String s : secrets) {
                inRedis.put(s, new Exp());
            }
            for (int i = 0; i < 2; i++) {
                startNode();
            }
        }

        void startNode() throws Exception {
            String name = "n" + nodes.size();
            if (redisUp) {
                user(name, true);
            }
            Path file = dir.resolve(name + ".keys");
            Files.writeString(file, String.join("\n", secrets) + "\n");
            Node n = new Node(name, file, clock, redis.url());
            for (String s : secrets) {
                Exp e;
                if (redisUp && inRedis.containsKey(s)) {
                    e = inRedis.get(s).copy();
                } else {
                    e = new Exp();
                }
                n.model.put(s, e);
            }
            nodes.add(n);
            log.add("start " + name + (redisUp ? "" : " (Redis away)"));
            if (redisUp) {
                await("the new instance shares", () -> n.shared.up());
            }
        }

        long now() {
            return nanos.get();
        }

        void advance(long millis) {
            nanos.addAndGet(TimeUnit.MILLISECONDS.toNanos(millis));
            epoch.addAndGet(millis);
        }

        void go(int steps) throws Exception {
            try {
                settle();
                for (int i = 0; i < steps; i++) {
                    advance(10);
                    step();
                    settle();
                }
                if (!redisUp) {
                    redisBack();
                    settle();
                }
            } catch (AssertionError | RuntimeException e) {
                int from = Math.max(0, log.size() - 30);
                fail("seed " + seed + ": " + e.getMessage() + "\nsteps:\n  " + String.join("\n  ", log.subList(from, log.size()))
                        + "\nviews:\n" + views(), e);
            }
        }

        void step() throws Exception {
            int r = rnd.nextInt(100);
            Node n = nodes.get(rnd.nextInt(nodes.size()));
            String s = secrets.get(rnd.nextInt(secrets.size()));
            if (!redisUp && (downSteps++ >= 3 || r < 15)) {
                redisBack();
            } else if (r < 15) {
                reject(n, s);
            } else if (r < 32) {
                limited(n, s, rnd.nextBoolean() ? -1 : 1 + rnd.nextInt(20));
            } else if (r < 45) {
                succeed(n, s);
            } else if (r < 60) {
                trial(n, s, rnd.nextBoolean());
            } else if (r < 65) {
                reset(n);
            } else if (r < 80) {
                long ms = 500 + rnd.nextInt(9) * 1000L;
                advance(ms);
                log.add("clock +" + ms + " ms");
            } else if (r < 88) {
                reload(n);
            } else if (r < 91 && redisUp) {
                redisAway();
            } else if (r < 94 && redisUp) {
                if (cut.contains(n)) {
                    heal(n);
                } else {
                    cutOff(n);
                }
            } else if (r < 97 && nodes.size() < 3) {
                startNode();
            } else {
                succeed(n, s);
            }
        }

        String nameOf(String secret) {
            return "key" + (List.of(UNIVERSE).indexOf(secret) + 1);
        }

        // ---- events -------------------------------------------------------------------------

        boolean usable(Exp e) {
            return e.kind == KeyState.Kind.AVAILABLE || (e.kind == KeyState.Kind.COOLING_DOWN && now() - e.until >= 0);
        }

        /** The nodes that learn a change made on {@code n}: all while Redis is up, else n alone. */
        List<Node> reach(Node n) {
            return connected(n) ? nodes.stream().filter(this::connected).toList() : List.of(n);
        }

        boolean connected(Node n) {
            return redisUp && !cut.contains(n);
        }

        void apply(Node n, String s, Exp next) {
            for (Node m : reach(n)) {
                if (m.model.containsKey(s)) {
                    m.model.put(s, next.copy());
                }
            }
            if (connected(n)) {
                inRedis.put(s, next.copy());
            }
        }

        void reject(Node n, String s) {
            Exp e = n.model.get(s);
            if (!usable(e)) {
                log.add(n.name + ": 401 on " + nameOf(s) + " skipped (not usable there)");
                return;
            }
            log.add(n.name + ": 401 on " + nameOf(s));
            n.pool.lifecycle().rejected(n.key(s), 401);
            Exp next = new Exp();
            next.kind = KeyState.Kind.FAILED;
            next.recheck = RECHECK * SECOND;
            next.until = now() + next.recheck;
            next.strikes = 0;
            next.at = epoch.get();
            apply(n, s, next);
        }

        void limited(Node n, String s, long retryAfter) {
            Exp e = n.model.get(s);
            if (e.kind == KeyState.Kind.FAILED) {
                log.add(n.name + ": 429 on " + nameOf(s) + " skipped (failed there)");
                return;
            }
            log.add(n.name + ": 429 on " + nameOf(s) + (retryAfter >= 0 ? " Retry-After " + retryAfter : " without Retry-After"));
            int strikesBefore = n.key(s).state().strikes();
            n.pool.lifecycle().limited(n.key(s), 429, retryAfter);
            Exp next = e.copy();
            if (!usable(e)) {
                if (retryAfter < 0 || e.until - (now() + retryAfter * SECOND) >= 0) {
                    return; // a late 429 of the rest running: nothing changes
                }
                next.until = now() + retryAfter * SECOND;
            } else {
                next.strikes = Math.min(strikesBefore + 1, 62);
                long seconds = retryAfter >= 0 ? retryAfter : Math.min(1L << (next.strikes - 1), COOLDOWN);
                next.until = now() + seconds * SECOND;
                if (e.kind == KeyState.Kind.COOLING_DOWN && e.until - next.until > 0) {
                    next.until = e.until;
                }
            }
            next.kind = KeyState.Kind.COOLING_DOWN;
            next.recheck = 0;
            next.at = epoch.get();
            next.recovery = false;
            apply(n, s, next);
        }

        void succeed(Node n, String s) {
            Exp e = n.model.get(s);
            log.add(n.name + ": 200 with " + nameOf(s));
            ApiKey k = n.key(s);
            KeyState before = k.state();
            n.pool.lifecycle().accepted(k, 200);
            if (k.state() == before) {
                return; // nothing changed here, so nothing is shared
            }
            if (e.kind == KeyState.Kind.FAILED) {
                return;
            }
            Exp next = e.copy();
            next.strikes = 0;
            if (usable(e)) {
                next.kind = KeyState.Kind.AVAILABLE;
                next.until = 0;
                next.recovery = false;
            }
            next.at = epoch.get();
            apply(n, s, next);
        }

        void trial(Node n, String s, boolean pass) throws Exception {
            Exp e = n.model.get(s);
            if (e.kind != KeyState.Kind.FAILED) {
                log.add("trial of " + nameOf(s) + " skipped (not failed)");
                return;
            }
            if (now() - e.until < 0) {
                long ms = TimeUnit.NANOSECONDS.toMillis(e.until - now()) + 1;
                advance(ms);
                log.add("clock +" + ms + " ms (" + nameOf(s) + "'s trial due)");
            }
            Node runner = n;
            if (connected(n)) {
                String id = id(s);
                Node[] holder = new Node[1];
                await("one instance holds " + nameOf(s) + "'s trial lease", () -> {
                    List<Node> may = new ArrayList<>();
                    for (Node m : reach(n)) {
                        ApiKey k = m.key(s);
                        if (k != null && m.shared.mayStart(k)) {
                            may.add(m);
                        }
                    }
                    if (may.size() > 1) {
                        throw new AssertionError("two instances may start the trial of " + nameOf(s) + ": "
                                + may.stream().map(m -> m.name).toList() + " (lease " + c.sync().get("megallm:{model}:trial:" + id) + ")");
                    }
                    holder[0] = may.isEmpty() ? null : may.get(0);
                    return holder[0] != null;
                });
                runner = holder[0];
            } else if (!n.shared.mayStart(n.key(s))) {
                log.add(n.name + ": trial of " + nameOf(s) + " skipped (lease held elsewhere as last told)");
                return;
            }
            ApiKey k = runner.key(s);
            if (!runner.pool.lifecycle().claimTrial(k)) {
                throw new AssertionError(runner.name + " holds the lease but could not claim the due trial of " + nameOf(s)
                        + ": " + k.state().kind() + " onTrial=" + k.state().onTrial());
            }
            log.add(runner.name + ": trial of " + nameOf(s) + (pass ? " passes (200)" : " fails (401)"));
            Exp next = runner.model.get(s).copy();
            next.at = epoch.get();
            if (pass) {
                runner.pool.lifecycle().accepted(k, 200);
                next.kind = KeyState.Kind.AVAILABLE;
                next.until = 0;
                next.recheck = 0;
                next.strikes = 0;
                next.recovery = true;
            } else {
                runner.pool.lifecycle().rejected(k, 401);
                next.recheck = Math.min(next.recheck * 2, KeyPolicy.MAX_RECHECK_SECONDS * SECOND);
                next.until = now() + next.recheck;
            }
            apply(runner, s, next);
        }

        void reset(Node n) {
            log.add(n.name + ": reset");
            n.pool.resetFailed();
            for (Map.Entry<String, Exp> e : n.model.entrySet()) {
                Exp x = e.getValue();
                if (x.kind != KeyState.Kind.AVAILABLE) {
                    Exp next = new Exp();
                    next.at = epoch.get();
                    next.recovery = true;
                    apply(n, e.getKey(), next);
                } else if (x.strikes != 0) {
                    // A reset of an available key forgets its 429 count here only: not a change of state.
                    x.strikes = 0;
                }
            }
        }

        void reload(Node n) throws Exception {
            List<String> next = new ArrayList<>(secrets);
            List<String> unused = new ArrayList<>();
            for (String s : UNIVERSE) {
                if (!secrets.contains(s)) {
                    unused.add(s);
                }
            }
            // Keys are added once: a key removed and added again gets what Redis still holds of it.
            unused.removeIf(removedOnce::contains);
            String change;
            if (!unused.isEmpty() && (secrets.size() <= 2 || rnd.nextBoolean())) {
                String s = unused.get(0);
                next.add(s);
                change = "adds " + nameOf(s);
            } else if (secrets.size() > 2) {
                String s = next.remove(rnd.nextInt(next.size()));
                removedOnce.add(s);
                change = "removes " + nameOf(s);
            } else {
                log.add("reload skipped");
                return;
            }
            log.add(n.name + ": reload, " + change);
            for (Node m : nodes) {
                Files.writeString(m.file, String.join("\n", next) + "\n");
            }
            secrets.clear();
            secrets.addAll(next);
            n.keyFile.reload();
            for (Node m : reach(n)) {
                m.model.keySet().retainAll(next);
                for (String s : next) {
                    m.model.computeIfAbsent(s, x -> new Exp());
                }
            }
            if (connected(n)) {
                inRedis.keySet().retainAll(next);
                for (String s : next) {
                    inRedis.computeIfAbsent(s, x -> new Exp());
                }
            }
            for (Node m : reach(n)) {
                await(m.name + " reloads its key file", () -> m.pool.keys().size() == next.size());
            }
            {
                // The others did not hear of it (Redis away from them): their file watcher reloads.
                for (Node m : nodes) {
                    if (!reach(n).contains(m)) {
                        m.keyFile.reload();
                        m.model.keySet().retainAll(next);
                        for (String s : next) {
                            m.model.computeIfAbsent(s, x -> new Exp());
                        }
                        log.add(m.name + ": reload by hand (Redis away: no announcement)");
                    }
                }
            }
        }

        final List<String> removedOnce = new ArrayList<>();

        void redisAway() throws Exception {
            log.add("Redis killed");
            redis.kill();
            redisUp = false;
            downSteps = 0;
            for (Node m : nodes) {
                await(m.name + " notices Redis is away", () -> !m.shared.up());
            }
        }

        void redisBack() throws Exception {
            log.add("Redis started again, empty");
            redis.startProcess();
            redisUp = true;
            for (Node m : nodes) {
                user(m.name, !cut.contains(m));
            }
            List<Node> back = nodes.stream().filter(this::connected).toList();
            for (Node m : back) {
                await(m.name + " shares again", () -> m.shared.up());
            }
            // Every instance publishes all its states again; the rules merge them.
            inRedis.clear();
            for (String s : secrets) {
                List<Exp> all = new ArrayList<>();
                for (Node m : back) {
                    all.add(m.model.get(s));
                }
                if (all.isEmpty()) {
                    continue;
                }
                Exp merged = merge(all);
                for (Node m : back) {
                    m.model.put(s, merged.copy());
                }
                inRedis.put(s, merged.copy());
            }
        }

        void user(String name, boolean on) {
            c.sync().aclSetuser(name, io.lettuce.core.AclSetuserArgs.Builder.on().addPassword("pw-" + name).allKeys()
                    .allChannels().allCommands());
            if (!on) {
                c.sync().aclSetuser(name, io.lettuce.core.AclSetuserArgs.Builder.off());
            }
        }

        /** A network cut between one instance and Redis: the others and Redis' data go on. */
        void cutOff(Node n) throws Exception {
            log.add(n.name + " cut from Redis");
            cut.add(n);
            c.sync().aclSetuser(n.name, io.lettuce.core.AclSetuserArgs.Builder.off());
            c.sync().clientKill(io.lettuce.core.KillArgs.Builder.user(n.name));
            await(n.name + " notices Redis is away", () -> !n.shared.up());
        }

        void heal(Node n) throws Exception {
            log.add(n.name + " reaches Redis again");
            cut.remove(n);
            c.sync().aclSetuser(n.name, io.lettuce.core.AclSetuserArgs.Builder.on());
            await(n.name + " shares again", () -> n.shared.up());
            for (String s : secrets) {
                List<Exp> all = new ArrayList<>();
                all.add(n.model.get(s));
                if (inRedis.containsKey(s)) {
                    all.add(inRedis.get(s));
                }
                Exp merged = merge(all);
                for (Node m : reach(n)) {
                    m.model.put(s, merged.copy());
                }
                inRedis.put(s, merged.copy());
            }
        }

        /**
         * README "Merging": a later deadline wins (of two rests the longer, of two failures the later
         * next trial), a failure beats a rest and an available; an available clears a failure or rest
         * only when it is a recovery made after it.
         */
        Exp merge(List<Exp> all) {
            long recovered = -1;
            Exp recovery = null;
            for (Exp e : all) {
                if (e.recovery && e.at > recovered) {
                    recovered = e.at;
                    recovery = e;
                }
            }
            Exp best = null;
            for (Exp e : all) {
                if (e.kind == KeyState.Kind.AVAILABLE || e.at < recovered) {
                    continue;
                }
                if (e.kind == KeyState.Kind.COOLING_DOWN && now() - e.until >= 0) {
                    continue; // over: as available
                }
                if (best == null || rank(e) > rank(best) || (rank(e) == rank(best) && e.until - best.until > 0)) {
                    best = e;
                }
            }
            if (best != null) {
                return best;
            }
            if (recovery != null) {
                return recovery;
            }
            Exp latest = all.get(0);
            for (Exp e : all) {
                if (e.at > latest.at) {
                    latest = e;
                }
            }
            Exp avail = latest.copy();
            avail.kind = KeyState.Kind.AVAILABLE;
            return avail;
        }

        static int rank(Exp e) {
            return e.kind == KeyState.Kind.FAILED ? 2 : 1;
        }

        // ---- settling and checking -----------------------------------------------------------

        interface Check {
            boolean holds() throws Exception;
        }

        void await(String what, Check check) throws Exception {
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(SETTLE_MILLIS);
            while (!check.holds()) {
                if (System.nanoTime() - deadline > 0) {
                    List<String> lines = io.megallm.proxy.server.testing.LogCapture.lines().stream()
                            .filter(l -> l.contains("shared") || l.contains("key ")).toList();
                    throw new AssertionError("not within " + SETTLE_MILLIS + " ms: " + what + "\nlog:\n  "
                            + String.join("\n  ", lines.subList(Math.max(0, lines.size() - 25), lines.size())));
                }
                Thread.sleep(5);
            }
        }

        /** Until every view is the model's (pub/sub delivered, merges answered), then the checks that need no wait. */
        void settle() throws Exception {
            String[] why = new String[1];
            try {
                await("every view matches the model", () -> {
                    why[0] = mismatch();
                    return why[0] == null;
                });
            } catch (AssertionError e) {
                throw new AssertionError(e.getMessage() + ": " + why[0]);
            }
            if (redisUp) {
                noKeyInRedis();
            }
            for (String m : published) {
                for (String s : UNIVERSE) {
                    if (m.contains(s)) {
                        throw new AssertionError("a key on the channel: " + m.replace(s, "<" + nameOf(s) + ">"));
                    }
                }
            }
        }

        /** Null when every instance (and Redis) holds the model's state of every key; else the first difference. */
        String mismatch() {
            long now = now();
            for (Node n : nodes) {
                if (n.pool.keys().size() != n.model.size()) {
                    return n.name + " has " + n.pool.keys().size() + " keys, the model " + n.model.size();
                }
                for (Map.Entry<String, Exp> me : n.model.entrySet()) {
                    ApiKey k = n.key(me.getKey());
                    if (k == null) {
                        return n.name + " lacks " + nameOf(me.getKey());
                    }
                    String d = differs(k.state(), me.getValue(), now);
                    if (d != null) {
                        return n.name + " " + nameOf(me.getKey()) + ": " + d + "; model " + me.getValue();
                    }
                }
            }
            if (redisUp) {
                for (Map.Entry<String, Exp> me : inRedis.entrySet()) {
                    Map<String, String> h = c.sync().hgetall("megallm:{model}:key:" + id(me.getKey()));
                    String d = differsInRedis(h, me.getValue());
                    if (d != null) {
                        return "Redis " + nameOf(me.getKey()) + ": " + d + " " + h + "; model " + me.getValue();
                    }
                }
            }
            return null;
        }

        /** Near a deadline, either side of it is right. */
        boolean nearDeadline(Exp e, long now) {
            return e.kind != KeyState.Kind.AVAILABLE && Math.abs(e.until - now) < SECOND;
        }

        String differs(KeyState s, Exp e, long now) {
            if (nearDeadline(e, now)) {
                return s.kind() == e.kind || s.effectiveKind(now) == KeyState.Kind.AVAILABLE ? null : "kind " + s.kind();
            }
            KeyState.Kind want = e.kind == KeyState.Kind.COOLING_DOWN && now - e.until >= 0 ? KeyState.Kind.AVAILABLE : e.kind;
            if (s.effectiveKind(now) != want) {
                return "kind " + s.kind() + " (until " + s.untilNanos() / 1_000_000 + "ms)";
            }
            if (s.onTrial()) {
                return "on trial";
            }
            // A trial due since some time and one due now are the same: due (savedStates sends "now").
            long until = want == KeyState.Kind.FAILED ? Math.max(s.untilNanos(), now) : s.untilNanos();
            long expected = want == KeyState.Kind.FAILED ? Math.max(e.until, now) : e.until;
            if (want != KeyState.Kind.AVAILABLE && Math.abs(until - expected) >= SECOND) {
                return "until " + s.untilNanos() / 1_000_000 + "ms";
            }
            if (want == KeyState.Kind.FAILED && s.recheckNanos() != e.recheck) {
                return "recheck " + s.recheckNanos() / SECOND + "s";
            }
            return null;
        }

        String differsInRedis(Map<String, String> h, Exp e) {
            long now = now();
            if (h.isEmpty()) {
                return "no entry";
            }
            String kind = h.get("kind");
            long until = Long.parseLong(h.getOrDefault("until", "0"));
            if (nearDeadline(e, now)) {
                return null;
            }
            boolean over = "cooling_down".equals(kind) && until <= epoch.get();
            String effective = over ? "available" : kind;
            String want = e.kind == KeyState.Kind.COOLING_DOWN && now - e.until >= 0 ? "available"
                    : e.kind.name().toLowerCase();
            return want.equals(effective) ? null : "kind " + kind;
        }

        void noKeyInRedis() {
            ScanCursor cursor = ScanCursor.INITIAL;
            do {
                KeyScanCursor<String> page = c.sync().scan(cursor);
                for (String name : page.getKeys()) {
                    String type = c.sync().type(name);
                    String content = switch (type) {
                        case "hash" -> c.sync().hgetall(name).toString();
                        case "string" -> c.sync().get(name);
                        default -> type;
                    };
                    for (String s : UNIVERSE) {
                        if (name.contains(s) || content.contains(s) || content.contains(s.substring(8))) {
                            throw new AssertionError("Redis holds " + nameOf(s) + " in " + name.replace(s, "<key>"));
                        }
                    }
                }
                cursor = page;
            } while (!cursor.isFinished());
        }

        String views() {
            StringBuilder sb = new StringBuilder();
            long now = now();
            for (Node n : nodes) {
                for (ApiKey k : n.pool.keys()) {
                    KeyState s = k.state();
                    String secret = null;
                    for (String u : UNIVERSE) {
                        if (id(u).equals(k.id())) {
                            secret = u;
                        }
                    }
                    sb.append("  ").append(n.name).append(' ').append(nameOf(secret)).append(": ").append(s.kind())
                            .append(s.onTrial() ? "(trial)" : "").append(" until=").append(s.untilNanos() / 1_000_000)
                            .append("ms recheck=").append(s.recheckNanos() / SECOND).append("s strikes=")
                            .append(s.strikes()).append("; model ").append(n.model.get(secret)).append('\n');
                }
            }
            sb.append("  now=").append(now / 1_000_000).append("ms epoch=").append(epoch.get()).append('\n');
            if (redisUp) {
                for (String s : secrets) {
                    try {
                        sb.append("  Redis ").append(nameOf(s)).append(": ")
                                .append(c.sync().hgetall("megallm:{model}:key:" + id(s))).append('\n');
                    } catch (RuntimeException e) {
                        sb.append("  Redis unreadable: ").append(e).append('\n');
                    }
                }
            }
            return sb.toString();
        }

        @Override
        public void close() throws Exception {
            for (Node n : nodes) {
                n.close();
            }
            sub.close();
            c.close();
            client.shutdown();
            redis.close();
        }
    }
}
