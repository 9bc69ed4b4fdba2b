package io.megallm.proxy.server.shared;

import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.api.StatefulRedisConnection;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * {@link SharedCounters} in Redis: an event loop adds to a {@link LongAdder}; every
 * {@value #FLUSH_MILLIS} ms the shared-state thread sends each counter's batch as one atomic
 * {@code INCRBY} (pipelined with the others, never awaited by a request), and the total Redis
 * answers becomes this instance's view of the sum over all instances. Counters read lately but
 * not added to here are read back on the same beat, so that the others' increments show.
 * Redis away: increments wait in the adders and go out when it is back; nothing is lost or
 * counted twice by a failed send (a send that failed is added back; one whose answer was lost
 * after Redis applied it can count twice, the price of never waiting).
 */
public final class RedisCounters implements SharedCounters {

    static final long FLUSH_MILLIS = 500;
    /**
     * A counter without a lifetime that nobody added to or read for this long is forgotten here
     * (Redis keeps it). A window (a counter with a lifetime) is kept, and read, until it ends:
     * forgotten after two idle minutes, a client's day window read as 0 again, and a client over
     * its daily_tokens got a burst through after every pause of two minutes.
     */
    private static final long IDLE_MILLIS = TimeUnit.MINUTES.toMillis(2);

    private final RedisKeyStates link;
    private final String script = RedisKeyStates.script("add-counter.lua");
    /** Sent while Redis refuses the counters and none has a batch to send: to tell when it takes them again. */
    private final String probeKey;
    private final Map<String, Counter> counters = new ConcurrentHashMap<>();

    private static final class Counter {
        final String redisKey;
        // Set by the first add() that names one: a limit reads its window's total before it adds
        // to it, and a counter made by that read has no lifetime yet (it got none in Redis either,
        // and a client's tpm and day windows stayed there for good).
        volatile long ttlMillis;
        volatile long expiresAtMillis;
        final LongAdder pending = new LongAdder();
        final AtomicLong inFlight = new AtomicLong();
        volatile long remote;
        volatile long touchedMillis = System.currentTimeMillis();

        Counter(String redisKey, long ttlMillis) {
            this.redisKey = redisKey;
            this.expiresAtMillis = Long.MAX_VALUE;
            lifetime(ttlMillis);
        }

        long total() {
            return remote + inFlight.get() + pending.sum();
        }

        void lifetime(long ttl) {
            if (ttl > 0 && ttlMillis == 0) {
                ttlMillis = ttl;
                expiresAtMillis = System.currentTimeMillis() + ttl;
            }
        }
    }

    public RedisCounters(RedisKeyStates link) {
        this.link = link;
        this.probeKey = link.prefix() + "n:probe";
        link.every(FLUSH_MILLIS, this::flush);
        link.atShutdown(this::sendRest);
    }

    /**
     * At shutdown: the increments not sent yet go out now; the future of their answers, or of a
     * PING behind the ones still out; null when nothing is left (or Redis is away).
     */
    private CompletableFuture<?> sendRest() {
        StatefulRedisConnection<String, String> conn = link.connectionIfUp();
        if (conn == null) {
            return null;
        }
        List<CompletableFuture<?>> sent = new ArrayList<>();
        boolean out = false;
        for (Counter c : counters.values()) {
            long delta = c.pending.sumThenReset();
            if (delta != 0) {
                sent.add(send(conn, c, delta));
            } else if (c.inFlight.get() != 0) {
                out = true;
            }
        }
        if (sent.isEmpty()) {
            return out ? conn.async().ping().toCompletableFuture() : null;
        }
        return CompletableFuture.allOf(sent.toArray(new CompletableFuture<?>[0]));
    }

    @Override
    public void add(String counter, long delta, long ttlMillis) {
        Counter c = counters.get(counter);
        if (c == null) {
            c = counters.computeIfAbsent(counter, n -> new Counter(link.prefix() + "n:" + n, Math.max(0L, ttlMillis)));
        }
        c.lifetime(ttlMillis);
        c.pending.add(delta);
        c.touchedMillis = System.currentTimeMillis();
    }

    @Override
    public long total(String counter) {
        return total(counter, 0);
    }

    @Override
    public long total(String counter, long ttlMillis) {
        Counter c = counters.get(counter);
        if (c == null) {
            c = counters.computeIfAbsent(counter, n -> new Counter(link.prefix() + "n:" + n, Math.max(0L, ttlMillis)));
        }
        c.lifetime(ttlMillis);
        c.touchedMillis = System.currentTimeMillis();
        return c.total();
    }

    /** A counter's value as Redis holds it; one that is not a number counts as 0 (INCRBY would refuse it too). */
    private static long parse(String v) {
        if (v == null) {
            return 0;
        }
        try {
            return Long.parseLong(v);
        } catch (NumberFormatException e) {
            return 0;
        }
    }

    /** One counter's batch; a send that fails is added back, to go out again. */
    private CompletableFuture<Long> send(StatefulRedisConnection<String, String> conn, Counter c, long delta) {
        c.inFlight.addAndGet(delta);
        return conn.async().<Long>eval(script, ScriptOutputType.INTEGER, new String[]{c.redisKey},
                        Long.toString(delta), Long.toString(c.ttlMillis))
                .whenComplete((total, e) -> {
                    // The total includes this batch and every one sent before it.
                    if (e == null && total != null) {
                        // Never below this batch: add-counter.lua restarts a forged value from 0.
                        c.remote = total;
                    } else {
                        c.pending.add(delta);
                    }
                    c.inFlight.addAndGet(-delta);
                }).toCompletableFuture();
    }

    /** On the shared-state thread. */
    private void flush() {
        long now = System.currentTimeMillis();
        counters.values().removeIf(c -> c.expiresAtMillis < now || (c.ttlMillis == 0
                && now - c.touchedMillis > IDLE_MILLIS && c.pending.sum() == 0 && c.inFlight.get() == 0));
        StatefulRedisConnection<String, String> conn = link.connectionIfUp();
        if (conn == null) {
            return;
        }
        Round round = new Round(link, Sharing.LIMITS);
        link.pipelined(() -> {
            boolean sent = false;
            for (Counter c : counters.values()) {
                long delta = c.pending.sumThenReset();
                if (delta != 0) {
                    round.write(send(conn, c, delta));
                    sent = true;
                } else if (c.inFlight.get() == 0) {
                    round.read(conn.async().get(c.redisKey).exceptionally(e -> {
                        if (RedisKeyStates.isWrongType(e)) {
                            return null; // not a count: 0, and the next increment replaces it
                        }
                        throw e instanceof java.util.concurrent.CompletionException ce ? ce
                                : new java.util.concurrent.CompletionException(e);
                    })).whenComplete((v, e) -> {
                        if (e == null && c.inFlight.get() == 0) {
                            c.remote = Math.max(0L, parse(v));
                        }
                    });
                }
            }
            if (!sent && link.refuses(Sharing.LIMITS)) {
                // Nothing to add: an increment of 0 on an entry of its own (one minute's lifetime)
                // is what tells whether Redis takes the counters' script again.
                round.write(conn.async().eval(script, ScriptOutputType.INTEGER, new String[]{probeKey}, "0", "60000"));
            }
        });
        round.end();
    }
}
