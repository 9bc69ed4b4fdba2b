package io.megallm.proxy.server.shared;

import io.lettuce.core.ClientOptions;
import io.lettuce.core.RedisChannelHandler;
import io.lettuce.core.RedisClient;
import io.lettuce.core.RedisCommandExecutionException;
import io.lettuce.core.RedisCommandTimeoutException;
import io.lettuce.core.RedisConnectionStateListener;
import io.lettuce.core.RedisURI;
import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.SocketOptions;
import io.lettuce.core.SslOptions;
import io.lettuce.core.TimeoutOptions;
import io.lettuce.core.api.StatefulRedisConnection;
import io.lettuce.core.codec.StringCodec;
import io.lettuce.core.pubsub.RedisPubSubAdapter;
import io.lettuce.core.pubsub.StatefulRedisPubSubConnection;
import io.lettuce.core.resource.ClientResources;
import io.lettuce.core.resource.Delay;
import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.key.KeyPool;
import io.megallm.proxy.key.KeyState;
import io.megallm.proxy.key.KeyStateListener;
import io.megallm.proxy.key.SavedKeyState;
import io.megallm.proxy.key.TrialGate;
import io.megallm.proxy.server.config.RedisUrl;
import io.megallm.proxy.server.keys.KeyFile;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Supplier;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeoutException;
import java.util.ArrayList;
import java.util.function.ToLongFunction;

/**
 * Key states shared between instances through Redis (contract §14), beside the local view that
 * keeps making every decision:
 * <ul>
 *   <li>a local change is queued by the event loop that made it (a map put, nothing else) and sent
 *       from this class's own thread as one atomic script per key, never awaited: the script merges
 *       it (a later deadline wins, a failure is not forgotten) and publishes the result;</li>
 *   <li>the other instances' results arrive by pub/sub and are adopted into the local view without
 *       being published again;</li>
 *   <li>a failed key's trial is leased ({@code SET NX PX}) shortly before it is due, so that one
 *       instance runs it: while Redis is reachable, a trial starts only on the instance whose
 *       lease Redis granted, whatever the local view says ({@link TrialGate}); the others do not
 *       claim it again before the lease's end, and keep the schedule the trials' results set.
 *       With Redis away, the lease a lost claim named still holds until its end, then each
 *       instance decides alone;</li>
 *   <li>every state goes with the time it came about ({@code at}): a state sent again (at start,
 *       from {@code KEY_STATE_FILE}; after a reconnection) keeps the time it was learnt, so that
 *       a recovery or reset shared since wins over it;</li>
 *   <li>a reload of the key file is announced, and the others reload their own file;</li>
 *   <li>Redis down, or so slow that a command gets no answer in 2 s: one warning, {@link #up()}
 *       false, Lettuce reconnects by itself (a PING tells when a slow one answers again), and the
 *       local states are published again (and merged) when it is back;</li>
 *   <li>Redis reachable but answering a kind of sharing ({@link Sharing}) with errors (a user whose
 *       ACL forbids scripts, {@code OOM}, a read-only replica): one warning per kind with Redis'
 *       error, {@link #up()} false while any kind is refused; the commands go on being sent (the
 *       key states all again once a second), and the first round that goes through whole is one
 *       line and {@link #up()} true again.</li>
 * </ul>
 * Redis holds SHA-256 ids of keys, never a key.
 */
public final class RedisKeyStates implements KeyStateListener, TrialGate, SharedState, AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(RedisKeyStates.class);

    /**
     * How much before a trial is due its lease is claimed, and how long a lease lasts. The lead
     * time lets the claim be answered before the trial is due (the request path never waits for
     * Redis: without a lease, a due trial is not started); the lease outlasts it, so that the
     * holder's trial is due while it holds the lease. While the holder's trial runs, its lease is
     * renewed once fewer than {@value #LEASE_RENEW_MILLIS} ms are left: a holder that dies
     * mid-trial blocks the key's trials elsewhere for one lease at most, not for the trial's
     * longest time (which may be minutes).
     */
    private static final long LEASE_AHEAD_MILLIS = 2000;
    private static final long LEASE_MILLIS = 6000;
    private static final long LEASE_RENEW_MILLIS = 4000;
    /**
     * A trial starts only under a lease with this much left, so that the extension sent when it
     * starts reaches Redis before the lease could lapse.
     */
    private static final long START_MARGIN_MILLIS = 1000;
    /**
     * A lease that lapsed without a trial started here (no request needed the key meanwhile) is
     * not claimed again for this long: an idle instance would otherwise keep the lease to itself
     * by claiming again just before Redis let it go, and the busy ones never got to run the trial.
     */
    private static final long YIELD_MILLIS = 2000;
    /** Entries of keys no instance has touched for a week go away by themselves. */
    private static final long STATE_TTL_MILLIS = TimeUnit.DAYS.toMillis(7);
    private static final long SWEEP_MILLIS = 250;
    private static final int HEARTBEAT_SWEEPS = 4;
    /**
     * Reloads announced by other instances are at least this far apart: a flood of announcements
     * (a loop, a hand on the channel) costs a few reloads a second, not one each.
     */
    private static final long RELOAD_GAP_MILLIS = 250;
    /** How long shutdown waits for the last batches to be answered. */
    private static final long DRAIN_MILLIS = 1500;

    private static final int STATE = 1;
    private static final int CLEARS = 2;
    private static final int TRIAL_START = 4;
    private static final int TRIAL_END = 8;

    /** Set while this thread applies what Redis said: the listeners then must not send it back. */
    private static final ThreadLocal<Boolean> APPLYING = ThreadLocal.withInitial(() -> Boolean.FALSE);

    private final RedisUrl url;
    private final String prefix;
    private final String channel;
    private final String instance;
    private final KeyPool keys;
    private final KeyFile keyFile;
    private final String mergeScript = script("merge-key-state.lua");
    private final String claimScript = script("claim-trial.lua");
    private final String releaseScript = script("release-trial.lua");
    private final ScheduledExecutorService worker;
    private final ConcurrentHashMap<String, Integer> pending = new ConcurrentHashMap<>();
    private final AtomicBoolean flushScheduled = new AtomicBoolean();
    /**
     * Leases Redis granted this instance, by key id: until when ({@link System#nanoTime()}, counted
     * from before the claim was sent, so never later than Redis' own expiry). Written by the
     * worker, read by the event loops about to start a due trial.
     */
    private final ConcurrentHashMap<String, Long> leases = new ConcurrentHashMap<>();
    private final Map<String, Boolean> claiming = new ConcurrentHashMap<>();
    /**
     * Per key id, how many times this instance released its lease (worker thread only). A claim
     * answered after a release that was sent behind it (a trial that ended before the answer to
     * its start's extension was read) was granted a lease the release then deleted in Redis: its
     * grant must not be recorded, or this instance would start its next trial with no lease.
     */
    private final Map<String, Long> releases = new HashMap<>();
    /** Keys whose lease lapsed here unused: not claimed again before then (worker thread only). */
    private final Map<String, Long> yielding = new HashMap<>();
    /** When each key's local state came about (epoch ms), as this process saw it change. */
    private final ConcurrentHashMap<String, Long> changedAt = new ConcurrentHashMap<>();
    /**
     * Keys whose state here is a recovery made here (a passed trial, a reset), not changed since:
     * sent again (a reconnection, a reload) it is still a recovery of that time, which clears an
     * older failure or rest in Redis. Sent as a plain "available", a reset made while Redis was
     * away lost to the failure it had undone.
     */
    private final java.util.Set<String> recovered = ConcurrentHashMap.newKeySet();
    /** When a state restored at start was recorded ({@code KEY_STATE_FILE}), by key id; 0 if unknown. */
    private final ToLongFunction<String> restoredAt;
    /**
     * Until when ({@link System#nanoTime()}: a wall clock stepped back must not stretch it) another
     * instance holds a key's trial lease, as its lost claim said; written by the worker, read by
     * the event loops about to start a due trial.
     */
    private final ConcurrentHashMap<String, Long> heldElsewhere = new ConcurrentHashMap<>();
    /** What the sharers on this connection still have to send at shutdown (see {@link #atShutdown}). */
    private final List<Supplier<CompletableFuture<?>>> lastSends = new CopyOnWriteArrayList<>();
    /**
     * The kinds of sharing Redis answers with errors now, with its error (as logged); changed on
     * the worker thread only, read by {@link #up()}.
     */
    private final Map<Sharing, String> refused = new ConcurrentHashMap<>();
    /** Sweeps since the key states were last all sent again while Redis refuses them (worker thread only). */
    private int refusedSweeps;
    /** At shutdown: the key states' last flush went out (worker thread only). */
    private boolean statesDrained;
    private ClientResources resources;
    private RedisClient client;
    private volatile StatefulRedisConnection<String, String> connection;
    private volatile StatefulRedisPubSubConnection<String, String> subscription;
    private volatile boolean up;
    private volatile boolean warned;
    private volatile boolean closed;
    /** Connected, but a command got no answer in time: treated as away until a PING comes back. */
    private volatile boolean slow;
    private boolean probing;
    /** An announced reload is scheduled: announcements arriving meanwhile join it (worker thread only). */
    private boolean reloadDue;
    private long lastReloadNanos = System.nanoTime() - TimeUnit.MILLISECONDS.toNanos(RELOAD_GAP_MILLIS);
    private int heartbeat;
    private long retryMillis = 250;

    public RedisKeyStates(RedisUrl url, String pool, KeyPool keys, KeyFile keyFile) {
        this(url, pool, keys, keyFile, id -> 0L);
    }

    /**
     * {@code restoredAt}: when the states this instance restored at start were recorded, by key
     * id (0: unknown, so any state in Redis is newer).
     */
    public RedisKeyStates(RedisUrl url, String pool, KeyPool keys, KeyFile keyFile, ToLongFunction<String> restoredAt) {
        this.url = url;
        this.restoredAt = restoredAt;
        // One hash tag for the whole pool: every key of it in one slot on Redis Cluster.
        this.prefix = "megallm:{" + pool + "}:";
        this.channel = prefix + "events";
        this.instance = instanceId();
        this.keys = keys;
        this.keyFile = keyFile;
        this.worker = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "megallm-shared-state");
            t.setDaemon(true);
            return t;
        });
    }

    /** Starts connecting in the background: the proxy serves from its local view meanwhile. */
    public RedisKeyStates start() {
        useNioTransport();
        resources = ClientResources.builder()
                .ioThreadPoolSize(1)
                .computationThreadPoolSize(1)
                // Back within a second or two of Redis: the default backs off to 30 s.
                .reconnectDelay(Delay.exponential(Duration.ofMillis(100), Duration.ofSeconds(2), 2,
                        TimeUnit.MILLISECONDS))
                .build();
        RedisURI uri = RedisURI.create(url.value());
        uri.setTimeout(Duration.ofSeconds(2));
        client = RedisClient.create(resources, uri);
        ClientOptions.Builder options = ClientOptions.builder();
        if (url.caFile() != null) {
            options.sslOptions(SslOptions.builder().jdkSslProvider().trustManager(url.caFile().toFile()).build());
        }
        client.setOptions(options
                .autoReconnect(true)
                // While Redis is away a command fails at once instead of queueing: what it carried is
                // published again, in full, on reconnection.
                .disconnectedBehavior(ClientOptions.DisconnectedBehavior.REJECT_COMMANDS)
                .requestQueueSize(10_000)
                .socketOptions(SocketOptions.builder().connectTimeout(Duration.ofSeconds(2)).build())
                .timeoutOptions(TimeoutOptions.enabled(Duration.ofSeconds(2)))
                .build());
        client.addListener(new RedisConnectionStateListener() {
            @Override
            public void onRedisConnected(RedisChannelHandler<?, ?> c, java.net.SocketAddress address) {
                run(RedisKeyStates.this::checkConnected);
            }

            @Override
            public void onRedisDisconnected(RedisChannelHandler<?, ?> c) {
                run(RedisKeyStates.this::checkConnected);
            }
        });
        keys.lifecycle().addListener(this);
        keys.lifecycle().setTrialGate(this);
        keys.onReload(this::reloaded);
        worker.execute(this::connect);
        worker.scheduleWithFixedDelay(this::sweep, SWEEP_MILLIS, SWEEP_MILLIS, TimeUnit.MILLISECONDS);
        log.info("shared state: key states shared through Redis {} as pool {} (instance {})", url.masked(),
                prefix, instance);
        return this;
    }

    /** Redis reachable, answering in time, and taking every kind of sharing. */
    @Override
    public boolean up() {
        return up && refused.isEmpty();
    }

    /**
     * A command of {@code what} failed (worker thread). No answer in time: Redis is slow, and counts
     * as away until a PING comes back. An error Redis answered ({@code NOPERM}, {@code WRONGTYPE},
     * {@code OOM}, {@code READONLY}…): Redis is there but this sharing does not work; one warning
     * per kind, until a whole round of it goes through ({@link #works}). A connection lost is told
     * by the connection itself.
     */
    void failed(Sharing what, Throwable e) {
        Throwable t = unwrap(e);
        if (t instanceof RedisCommandTimeoutException) {
            slow = true;
            markDown("no answer within 2 s");
        } else if (t instanceof RedisCommandExecutionException && !closed) {
            String error = errorText(t.getMessage());
            if (refused.put(what, error) == null) {
                log.warn("shared state: Redis {} refuses the {} ({}); they are not shared until it takes them,"
                        + " this instance goes on with its own", url.masked(), what, error);
            }
        }
    }

    /** A whole round of {@code what} went through (worker thread): shared again, said once. */
    void works(Sharing what) {
        if (refused.remove(what) != null) {
            log.info("shared state: Redis {} takes the {} again; shared again", url.masked(), what);
        }
    }

    /** Whether Redis refuses {@code what} now. */
    boolean refuses(Sharing what) {
        return refused.containsKey(what);
    }

    /** An error Redis answered: the command reached it, and its own text says what was wrong. */
    static boolean isErrorReply(Throwable e) {
        return unwrap(e) instanceof RedisCommandExecutionException;
    }

    /** A {@code WRONGTYPE} answer: an entry of another type than the command's under its name. */
    static boolean isWrongType(Throwable e) {
        Throwable t = unwrap(e);
        return t instanceof RedisCommandExecutionException && t.getMessage() != null
                && t.getMessage().startsWith("WRONGTYPE");
    }

    private static Throwable unwrap(Throwable e) {
        Throwable t = e;
        while ((t instanceof java.util.concurrent.CompletionException || t instanceof ExecutionException)
                && t.getCause() != null) {
            t = t.getCause();
        }
        return t;
    }

    /**
     * Redis' error for the log: its first line, without the script's id and line that Redis 7
     * appends, and without any entry name of ours (Redis does not put one there today; a SHA-256
     * id is no secret, but it is not the log's business), at most 200 characters. Redis' errors
     * carry no password.
     */
    static String errorText(String message) {
        String m = message == null ? "" : message.strip();
        int end = m.indexOf('\n');
        if (end >= 0) {
            m = m.substring(0, end).strip();
        }
        int script = m.indexOf(" script: ");
        if (script > 0) {
            m = m.substring(0, script);
        }
        m = m.replaceAll("megallm:\\{[^}]*}:\\S*", "megallm:{…}:…");
        if (m.length() > 200) {
            m = m.substring(0, 200) + "…";
        }
        return m.isEmpty() ? "an error" : m;
    }

    // ---- for what else is shared on this connection and thread (RedisCounters) ------------------

    /** Every key this pool's instances share starts with this ({@code megallm:{pool}:}). */
    String prefix() {
        return prefix;
    }

    /** The connection while Redis is up, else null; to be used on this class's thread only. */
    StatefulRedisConnection<String, String> connectionIfUp() {
        return up ? connection : null;
    }

    /** Runs {@code task} on this class's thread every {@code millis}, so that it may send commands. */
    void every(long millis, Runnable task) {
        worker.scheduleWithFixedDelay(() -> {
            try {
                task.run();
            } catch (RuntimeException e) {
                log.warn("shared state: {} failed ({})", task, e.toString());
            }
        }, millis, millis, TimeUnit.MILLISECONDS);
    }

    /**
     * At shutdown, {@code send} is called on this class's thread until it returns null: each call
     * sends what is still pending and returns the future of Redis' answer to it (null: nothing
     * left to send). See {@link #close()}.
     */
    void atShutdown(Supplier<CompletableFuture<?>> send) {
        lastSends.add(send);
    }

    /**
     * Redis answered that it lost what this instance had sent (flushed, or restarted empty without
     * the connection dropping): the key states go again, as after a reconnection.
     */
    void forgotten() {
        run(() -> {
            log.info("shared state: Redis {} lost the shared data (flushed or restarted empty); publishing this"
                    + " instance's key states again", url.masked());
            publishAll();
        });
    }

    /** Runs {@code task} on this class's thread soon (an answer from Redis arrives on Lettuce's). */
    void execute(Runnable task) {
        run(task);
    }

    public String instance() {
        return instance;
    }

    // ---- local changes (event loops: a map update and at most one task hand-off) ---------------

    @Override
    public void changed(ApiKey key, KeyState from, KeyState to) {
        changedAt.put(key.id(), keys.lifecycle().clock().epochMillis());
        // A rest that ran out is no recovery: it clears nothing another instance learnt meanwhile.
        if (!APPLYING.get() && to.kind() == KeyState.Kind.AVAILABLE && from.kind() != KeyState.Kind.AVAILABLE
                && (from.onTrial() || !(from.kind() == KeyState.Kind.COOLING_DOWN && from.usableAt(keys.now())))) {
            recovered.add(key.id());
        } else {
            recovered.remove(key.id());
        }
        if (to.kind() == KeyState.Kind.AVAILABLE && !heldElsewhere.isEmpty()) {
            // Back in rotation (here or elsewhere): a later failure's trial owes nothing to that lease.
            heldElsewhere.remove(key.id());
        }
        if (APPLYING.get()) {
            return;
        }
        int what;
        if (to.onTrial() && !from.onTrial()) {
            what = TRIAL_START;
        } else if (from.onTrial() && !to.onTrial()) {
            what = TRIAL_END | STATE | (to.kind() == KeyState.Kind.AVAILABLE ? CLEARS : 0);
        } else {
            what = STATE | (from.kind() != KeyState.Kind.AVAILABLE && to.kind() == KeyState.Kind.AVAILABLE
                    ? CLEARS : 0);
        }
        pending.merge(key.id(), what, (a, b) -> a | b);
        if (flushScheduled.compareAndSet(false, true)) {
            run(this::flush);
        }
    }

    /**
     * While Redis is reachable, a due trial starts only under a lease Redis granted here: a local
     * view that thinks it due (a state adopted late, a claim not answered yet) is not enough, or
     * two instances could run it at once. The sweep claims due trials within a quarter second.
     * Redis away: a due trial waits while another instance holds its lease as far as this one
     * knows, then each instance decides alone.
     */
    @Override
    public boolean mayStart(ApiKey key) {
        // Redis refusing the key states (an ACL without scripts) refuses the leases too: as away.
        if (up && !refused.containsKey(Sharing.KEY_STATES)) {
            Long mine = leases.get(key.id());
            return mine != null && mine - System.nanoTime() > TimeUnit.MILLISECONDS.toNanos(START_MARGIN_MILLIS);
        }
        Long end = heldElsewhere.get(key.id());
        if (end == null) {
            return true;
        }
        if (end - System.nanoTime() <= 0) {
            heldElsewhere.remove(key.id(), end);
            return true;
        }
        return false;
    }

    /** A reload made here is announced; one made because another instance announced it is not. */
    private void reloaded() {
        if (APPLYING.get()) {
            return;
        }
        run(() -> {
            StatefulRedisConnection<String, String> c = connection;
            if (c != null && up) {
                c.async().publish(channel, "r|" + instance).whenCompleteAsync((n, e) -> {
                    if (e != null) {
                        failed(Sharing.KEY_STATES, e);
                    }
                }, worker);
            }
            publishAll();
        });
    }

    // ---- the worker thread ----------------------------------------------------------------------

    private void connect() {
        if (closed) {
            return;
        }
        try {
            if (connection == null) {
                connection = client.connect(StringCodec.UTF8);
            }
            if (subscription == null) {
                StatefulRedisPubSubConnection<String, String> s = client.connectPubSub(StringCodec.UTF8);
                s.addListener(new RedisPubSubAdapter<>() {
                    @Override
                    public void message(String ch, String message) {
                        run(() -> received(message));
                    }
                });
                try {
                    s.sync().subscribe(channel);
                } catch (RuntimeException e) {
                    s.closeAsync();
                    throw e;
                }
                subscription = s;
            }
            retryMillis = 250;
            checkConnected();
        } catch (RuntimeException e) {
            markDown(rootCause(e));
            retryMillis = Math.min(retryMillis * 2, 2000);
            worker.schedule(this::connect, retryMillis, TimeUnit.MILLISECONDS);
        }
    }

    /** Up when both connections are open; coming up publishes every local state (reconciliation). */
    private void checkConnected() {
        StatefulRedisConnection<String, String> c = connection;
        StatefulRedisPubSubConnection<String, String> s = subscription;
        boolean now = c != null && s != null && c.isOpen() && s.isOpen() && !slow;
        if (now && !up) {
            up = true;
            if (warned) {
                log.info("shared state: Redis {} reachable again; publishing this instance's key states", url.masked());
            }
            warned = false;
            publishAll();
        } else if (!now) {
            markDown("connection lost");
        }
    }

    /**
     * One PING at a time: once a second while Redis is up, so that an instance with nothing to
     * send still notices a Redis that stopped answering; every sweep while it is slow, to tell
     * when it answers again.
     */
    private void probe() {
        StatefulRedisConnection<String, String> c = connection;
        if (probing || c == null || !c.isOpen() || !(slow || (up && ++heartbeat % HEARTBEAT_SWEEPS == 0))) {
            return;
        }
        probing = true;
        c.async().ping().whenCompleteAsync((r, e) -> {
            probing = false;
            if (e != null) {
                failed(Sharing.KEY_STATES, e);
            } else if (slow) {
                slow = false;
                checkConnected();
            }
        }, worker);
    }

    private void markDown(String why) {
        up = false;
        if (!warned) {
            warned = true;
            log.warn("shared state: Redis {} unavailable ({}); going on with this instance's own key states,"
                    + " reconnecting in the background", url.masked(), why);
        }
    }

    private void flush() {
        flushScheduled.set(false);
        if (pending.isEmpty()) {
            return;
        }
        pipelined(this::flushPending);
    }

    private void flushPending() {
        Round round = new Round(this, Sharing.KEY_STATES);
        Map<String, SavedKeyState> states = byId(keys.savedStates());
        Map<String, ApiKey> current = new HashMap<>();
        for (ApiKey k : keys.keys()) {
            current.put(k.id(), k);
        }
        for (String id : List.copyOf(pending.keySet())) {
            Integer what = pending.remove(id);
            ApiKey key = current.get(id);
            if (what == null || key == null) {
                continue;
            }
            if ((what & TRIAL_START) != 0 && key.state().onTrial()) {
                claim(id, LEASE_MILLIS, key);
            }
            if ((what & TRIAL_END) != 0) {
                release(id);
            }
            SavedKeyState s = states.get(id);
            if ((what & STATE) != 0 && s != null && !key.state().onTrial()) {
                publish(s, (what & CLEARS) != 0, round);
            }
        }
        round.end();
    }

    private void publishAll() {
        Round round = new Round(this, Sharing.KEY_STATES);
        pipelined(() -> {
            for (SavedKeyState s : keys.savedStates()) {
                publish(s, s.kind() == KeyState.Kind.AVAILABLE && recovered.contains(s.id()), round);
            }
        });
        round.end();
    }

    /**
     * The commands {@code batch} issues go out in one write (a pipeline) instead of one each.
     * Only this thread sends on {@link #connection}, so holding its flushes is safe.
     */
    void pipelined(Runnable batch) {
        StatefulRedisConnection<String, String> c = connection;
        if (c == null || !up) {
            batch.run();
            return;
        }
        c.setAutoFlushCommands(false);
        try {
            batch.run();
        } finally {
            c.flushCommands();
            c.setAutoFlushCommands(true);
        }
    }

    /** One atomic merge, not awaited; when Redis keeps a different state, that one is adopted here. */
    private void publish(SavedKeyState s, boolean clears, Round round) {
        StatefulRedisConnection<String, String> c = connection;
        if (c == null || !up) {
            return;
        }
        String[] args = {s.id(), kindName(s.kind()), Long.toString(s.untilEpochMillis()),
                Integer.toString(s.strikes()), Long.toString(s.recheckSeconds()),
                s.reason() == null ? "" : s.reason().replace('|', '/'),
                Long.toString(since(s.id())), clears ? "1" : "0", instance, channel,
                Long.toString(STATE_TTL_MILLIS), Long.toString(keys.lifecycle().clock().epochMillis())};
        round.write(c.async().<List<Object>>eval(mergeScript, ScriptOutputType.MULTI,
                        new String[]{prefix + "key:" + s.id()}, args))
                .whenCompleteAsync((r, e) -> {
                    if (e != null) {
                        return; // reported by the round
                    }
                    if (r == null || r.size() < 6) {
                        return;
                    }
                    if (!"1".equals(String.valueOf(r.get(0)))) {
                        adopt(new SavedKeyState(s.id(), kindOf(RedisReplies.text(r.get(1))),
                                emptyToNull(RedisReplies.text(r.get(5))), RedisReplies.number(r.get(2)),
                                (int) RedisReplies.number(r.get(3)), RedisReplies.number(r.get(4))),
                                // Redis' merge decided against this instance's state: its answer is
                                // taken whatever its time (it is older than the change just sent),
                                // and keeps that time: dated to now, it made this instance ignore
                                // a recovery shared later but made before now.
                                "as shared in Redis", -1, r.size() > 6 ? RedisReplies.number(r.get(6)) : -1);
                    }
                }, worker);
    }

    /** When this instance's state of the key came about: its last change here, or its record in the state file. */
    private long since(String id) {
        Long at = changedAt.get(id);
        return at != null ? at : restoredAt.applyAsLong(id);
    }

    private void received(String message) {
        String[] f = message.split("\\|", 9);
        if (f.length < 2 || f[1].equals(instance)) {
            return;
        }
        if (f[0].equals("r")) {
            if (!reloadDue) {
                reloadDue = true;
                long wait = RELOAD_GAP_MILLIS - TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - lastReloadNanos);
                try {
                    worker.schedule(this::reloadAnnounced, Math.max(0L, wait), TimeUnit.MILLISECONDS);
                } catch (java.util.concurrent.RejectedExecutionException e) {
                    // closed: nothing to reload for
                }
            }
        } else if (f[0].equals("s") && (f.length == 8 || f.length == 9)) {
            KeyState.Kind kind = kindOf(f[3]);
            if (kind != null) {
                // Another instance's state of the key: a trial it held has ended, or the lease is
                // asked again at the next claim, which is due by this state's schedule.
                heldElsewhere.remove(f[2]);
                adopt(new SavedKeyState(f[2], kind, emptyToNull(f[7]), RedisReplies.parse(f[4]),
                        (int) RedisReplies.parse(f[5]), RedisReplies.parse(f[6])), "as another instance found",
                        f.length == 9 ? RedisReplies.parse(f[8]) : -1);
            }
        }
    }

    /** One reload for every announcement since the last one. */
    private void reloadAnnounced() {
        reloadDue = false;
        lastReloadNanos = System.nanoTime();
        log.info("shared state: another instance reloaded its key file; reloading ours");
        APPLYING.set(Boolean.TRUE);
        try {
            keyFile.reload();
        } finally {
            APPLYING.set(Boolean.FALSE);
        }
        publishAll();
    }

    /**
     * {@code at}: when that state came about (epoch ms), or -1 for no comparison (Redis' own answer to
     * a merge of this instance's, which decided against it). A state older than this
     * instance's own of the key (pub/sub delivers late: the other instance's merge came before this
     * one's change) is not taken: this one's is merged in Redis in turn, and Redis' answer decides.
     */
    private void adopt(SavedKeyState s, String source, long at) {
        adopt(s, source, at, at);
    }

    /** {@code stateAt}: when the state came about, kept as its time here (-1: unknown, now). */
    private void adopt(SavedKeyState s, String source, long at, long stateAt) {
        if (at >= 0) {
            // A time ahead of this clock (a clock running ahead, a hand in Redis) counts as now:
            // kept as it is, it would make this instance ignore every later state until then.
            at = Math.min(at, keys.lifecycle().clock().epochMillis());
            Long mine = changedAt.get(s.id());
            if (mine != null && mine > at) {
                // This instance's newer state may have been merged before that one (Redis then
                // kept the older failure, or the longer rest, and will not say so again): merged
                // once more, Redis' answer decides. Ignored alone, the two views stayed apart.
                pending.merge(s.id(), STATE, (a, b) -> a | b);
                if (flushScheduled.compareAndSet(false, true)) {
                    run(this::flush);
                }
                return;
            }
        }
        APPLYING.set(Boolean.TRUE);
        try {
            if (keys.adopt(s, source) && stateAt >= 0) {
                // Its time is the state's own, not when it arrived here.
                changedAt.put(s.id(), Math.min(stateAt, keys.lifecycle().clock().epochMillis()));
            }
        } finally {
            APPLYING.set(Boolean.FALSE);
        }
    }

    /**
     * Claims the trial of every failed key due within {@value #LEASE_AHEAD_MILLIS} ms, but not
     * while another instance holds its lease as a lost claim said (a state that instance shares
     * meanwhile ends that wait).
     */
    private void sweep() {
        probe();
        if (!up) {
            leases.clear();
            return;
        }
        // Refused: every state goes again once a second, to share it as soon as Redis takes them
        // (and to tell when it does: that round goes through whole).
        if (!refused.containsKey(Sharing.KEY_STATES)) {
            refusedSweeps = 0;
        } else if (++refusedSweeps % HEARTBEAT_SWEEPS == 0) {
            publishAll();
        }
        long now = keys.now();
        long ahead = TimeUnit.MILLISECONDS.toNanos(LEASE_AHEAD_MILLIS);
        long nanos = System.nanoTime();
        for (Map.Entry<String, Long> lease : leases.entrySet()) {
            if (lease.getValue() - nanos <= 0 && leases.remove(lease.getKey(), lease.getValue())) {
                yielding.put(lease.getKey(), nanos + TimeUnit.MILLISECONDS.toNanos(YIELD_MILLIS));
            }
        }
        yielding.values().removeIf(end -> end - nanos <= 0);
        for (ApiKey k : keys.keys()) {
            KeyState s = k.state();
            if (!s.rechecks()) {
                continue;
            }
            String id = k.id();
            Long mine = leases.get(id);
            Long held = heldElsewhere.get(id);
            boolean heldNow = held != null && held - nanos > 0;
            if (s.onTrial()) {
                // This instance's trial runs: its lease is renewed while it does (one taken when
                // Redis came back mid-trial, too), and lapses within a lease if this instance dies.
                if (mine != null ? mine - nanos < TimeUnit.MILLISECONDS.toNanos(LEASE_RENEW_MILLIS) : !heldNow) {
                    claim(id, LEASE_MILLIS, k);
                }
                continue;
            }
            if (s.untilNanos() - now > ahead || mine != null || heldNow || yielding.containsKey(id)) {
                continue; // not due soon; held here, waiting for a request; another instance's; yielded
            }
            claim(id, LEASE_MILLIS, k);
        }
    }

    private void claim(String id, long millis, ApiKey key) {
        StatefulRedisConnection<String, String> c = connection;
        if (c == null || !up || claiming.putIfAbsent(id, Boolean.TRUE) != null) {
            return;
        }
        long sent = System.nanoTime();
        long released = releases.getOrDefault(id, 0L);
        c.async().<Long>eval(claimScript, ScriptOutputType.INTEGER, new String[]{prefix + "trial:" + id},
                        instance, Long.toString(millis))
                .whenCompleteAsync((r, e) -> {
                    claiming.remove(id);
                    if (e != null) {
                        failed(Sharing.KEY_STATES, e);
                        return;
                    }
                    if (r == null) {
                        return;
                    }
                    if (r < 0) {
                        heldElsewhere.remove(id);
                        if (releases.getOrDefault(id, 0L) != released) {
                            // Released since (the trial ended): Redis deleted this lease after granting it.
                            return;
                        }
                        leases.put(id, sent + TimeUnit.MILLISECONDS.toNanos(millis));
                        log.debug("shared state: {} holds the trial lease of key {} for {} ms", instance, key, millis);
                        return;
                    }
                    log.debug("shared state: {} lost the trial lease of key {}: held elsewhere for {} ms more",
                            instance, key, r);
                    // Whatever this instance thought it held, Redis says another instance holds it now.
                    leases.remove(id);
                    // Who runs the trial, not when it is due: the key's schedule stays the one its
                    // trials' results set (the holder's is shared when it ends). Moving it to the
                    // lease's end cut a doubled wait short. No claim again before that end.
                    heldElsewhere.put(id, System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(Math.max(r, 1L)));
                }, worker);
    }

    private void release(String id) {
        releases.merge(id, 1L, Long::sum);
        leases.remove(id);
        StatefulRedisConnection<String, String> c = connection;
        if (c != null && up) {
            c.async().eval(releaseScript, ScriptOutputType.INTEGER, new String[]{prefix + "trial:" + id}, instance)
                    .whenCompleteAsync((r, e) -> {
                        if (e != null) {
                            failed(Sharing.KEY_STATES, e);
                        }
                    }, worker);
        }
    }

    /**
     * Sends what is still pending (key states, and the last batches of usage and limit counters)
     * and waits up to {@value #DRAIN_MILLIS} ms for Redis' answers, then closes: the requests that
     * ended last count over every instance too. Redis away or silent costs that much at most.
     */
    @Override
    public void close() {
        drain(DRAIN_MILLIS);
        closed = true;
        worker.shutdown();
        try {
            worker.awaitTermination(2, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        StatefulRedisPubSubConnection<String, String> s = subscription;
        if (s != null) {
            s.closeAsync();
        }
        StatefulRedisConnection<String, String> c = connection;
        if (c != null) {
            c.closeAsync();
        }
        if (client != null) {
            client.shutdown(Duration.ZERO, Duration.ofSeconds(2));
        }
        if (resources != null) {
            resources.shutdown(0, 2, TimeUnit.SECONDS);
        }
    }

    private void drain(long millis) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(millis);
        List<Supplier<CompletableFuture<?>>> all = new ArrayList<>();
        all.add(this::lastKeyStates);
        all.addAll(lastSends);
        String refusedNow = null;
        try {
            for (Supplier<CompletableFuture<?>> send : all) {
                sending:
                for (;;) {
                    long left = deadline - System.nanoTime();
                    if (!up) {
                        return;
                    }
                    if (left <= 0) {
                        throw new TimeoutException();
                    }
                    CompletableFuture<?> answer = CompletableFuture.supplyAsync(send, worker).get(left, TimeUnit.NANOSECONDS);
                    if (answer == null) {
                        break;
                    }
                    try {
                        answer.get(Math.max(1L, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                    } catch (ExecutionException e) {
                        if (isErrorReply(e)) {
                            // Refused (an ACL, OOM): sent again, it would be refused again until the deadline.
                            refusedNow = errorText(unwrap(e).getMessage());
                            break sending;
                        }
                        // Not applied: the next call sends it again, while time is left.
                    }
                }
            }
            if (refusedNow != null) {
                log.warn("shared state: the last changes of this instance could not all be sent to Redis before it stops"
                        + " (refused: {})", refusedNow);
            }
        } catch (TimeoutException | ExecutionException | RejectedExecutionException e) {
            log.warn("shared state: the last changes of this instance could not all be sent to Redis before it stops ({})",
                    e.getClass().getSimpleName());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** The key states not sent yet; then a PING, which Redis answers after every command sent before it. */
    private CompletableFuture<?> lastKeyStates() {
        StatefulRedisConnection<String, String> c = connection;
        if (statesDrained || c == null || !up) {
            return null;
        }
        statesDrained = true;
        flush();
        return c.async().ping().toCompletableFuture();
    }

    // ---- helpers --------------------------------------------------------------------------------

    /**
     * Lettuce's native transports meet Netty 4.2's event loops as "incompatible event loop type"
     * (Lettuce picks the epoll channel, its loops are not epoll's); a few Redis connections need no
     * native transport, so Lettuce runs on NIO. Lettuce reads these switches once, when its
     * transport classes load: call this before any Lettuce client is made. An operator's own
     * {@code -Dio.lettuce.core.epoll=…} is left alone.
     */
    public static void useNioTransport() {
        for (String transport : new String[]{"io.lettuce.core.epoll", "io.lettuce.core.iouring", "io.lettuce.core.kqueue"}) {
            if (System.getProperty(transport) == null) {
                System.setProperty(transport, "false");
            }
        }
    }

    /** Hands work to the worker thread; after close there is none to do. */
    private void run(Runnable task) {
        try {
            worker.execute(task);
        } catch (java.util.concurrent.RejectedExecutionException e) {
            // closed: nothing is shared any more
        }
    }

    /** The innermost cause's message ("Connection refused"), which says more than Lettuce's wrapper. */
    private static String rootCause(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t.getCause() != t) {
            t = t.getCause();
        }
        String m = t.getMessage();
        return m == null || m.isBlank() ? t.getClass().getSimpleName() : m;
    }

    private static Map<String, SavedKeyState> byId(List<SavedKeyState> states) {
        Map<String, SavedKeyState> m = new HashMap<>();
        for (SavedKeyState s : states) {
            m.put(s.id(), s);
        }
        return m;
    }

    private static String kindName(KeyState.Kind kind) {
        return kind.name().toLowerCase(Locale.ROOT);
    }

    private static KeyState.Kind kindOf(String name) {
        for (KeyState.Kind k : KeyState.Kind.values()) {
            if (k.name().equalsIgnoreCase(name)) {
                return k;
            }
        }
        return null;
    }

    private static String emptyToNull(String s) {
        return s == null || s.isEmpty() ? null : s;
    }

    private static String instanceId() {
        byte[] b = new byte[6];
        new SecureRandom().nextBytes(b);
        StringBuilder sb = new StringBuilder();
        for (byte x : b) {
            sb.append(String.format("%02x", x));
        }
        return sb.toString();
    }

    static String script(String name) {
        try (InputStream in = RedisKeyStates.class.getResourceAsStream("/redis/" + name)) {
            if (in == null) {
                throw new IllegalStateException("missing resource /redis/" + name);
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException("unreadable resource /redis/" + name, e);
        }
    }
}
