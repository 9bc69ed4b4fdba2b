package io.megallm.proxy.server.shared;

import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.api.StatefulRedisConnection;
import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.server.clients.Client;
import io.megallm.proxy.server.usage.UsageLedger;
import io.megallm.proxy.server.usage.UsageLedger.Row;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.function.Supplier;

/**
 * Usage totals over every instance sharing a Redis (contract §14), for {@code /admin/usage}.
 * Nothing on the request path changes: every {@value #FLUSH_MILLIS} ms this class's thread reads
 * the counters the ledger, the keys and the clients already keep, and sends what grew since the
 * last batch Redis confirmed as one script of {@code HINCRBY}s ({@code add-usage.lua}), never
 * awaited by a request. The script's answer (all totals) becomes the view; until the next one,
 * what this instance counted since is added to it.
 *
 * <p>Exactly once, Redis or no Redis: one batch is out at a time, numbered; a batch whose answer
 * failed is sent again unchanged (the script skips a number it has applied), so a lost answer
 * counts nothing twice; while Redis is away nothing is sent and the counts keep growing here,
 * to go out in the first batch after its return. A Redis that lost this instance's batches
 * (restarted empty, flushed) says so, and the instance sends everything it ever counted.
 * Redis holds SHA-256 ids of pool keys and client keys, never a key.
 */
public final class SharedUsage implements UsageLedger.AllInstances {

    static final long FLUSH_MILLIS = 1000;
    private static final String[] COUNTS = {"requests", "prompt", "completion", "cached"};

    private final RedisKeyStates link;
    private final UsageLedger ledger;
    private final Supplier<? extends Collection<ApiKey>> keys;
    private final Supplier<? extends Collection<Client>> clients;
    private final String script = RedisKeyStates.script("add-usage.lua");
    private final String[] redisKeys;
    private final long startMillis = System.currentTimeMillis();

    // This class's thread only.
    /** Per counting object: its counts as of the last batch Redis applied. */
    private final Map<Object, Sent> sent = new IdentityHashMap<>();
    private long appliedBatch;
    /** The next batch must carry all this instance counted: its first, or Redis forgot the earlier ones. */
    private boolean full = true;
    private Batch out;
    private boolean waiting;
    /** Completed when the batch out is answered (or its send failed). */
    private CompletableFuture<Void> answer = CompletableFuture.completedFuture(null);

    private volatile Snapshot view;

    private static final class Sent {
        final Row row;
        long[] counts = new long[4];

        Sent(Row row) {
            this.row = row;
        }
    }

    /** One batch: its number, and per object the counts it brings Redis up to. */
    private record Batch(long number, boolean full, Map<Sent, long[]> upTo, String[] args) {
    }

    public SharedUsage(RedisKeyStates link, UsageLedger ledger, Supplier<? extends Collection<ApiKey>> keys,
                       Supplier<? extends Collection<Client>> clients) {
        this.link = link;
        this.ledger = ledger;
        this.keys = keys;
        this.clients = clients;
        this.redisKeys = new String[]{link.prefix() + "usage", link.prefix() + "usage:seq"};
        link.every(FLUSH_MILLIS, this::flush);
        link.atShutdown(this::sendRest);
    }

    /**
     * At shutdown: the answer to the batch out, or to one sent now with what was counted since;
     * null when Redis has it all (or is away: nothing can be sent).
     */
    private CompletableFuture<?> sendRest() {
        if (link.connectionIfUp() == null) {
            return null;
        }
        if (!waiting) {
            if (out == null) {
                Batch next = nextBatch();
                if (next.number() == appliedBatch) {
                    return null;
                }
                out = next;
            }
            flush();
        }
        return answer;
    }

    @Override
    public UsageLedger.View view() {
        return link.up() ? view : null;
    }

    /** On the shared-state thread. */
    private void flush() {
        StatefulRedisConnection<String, String> conn = link.connectionIfUp();
        if (conn == null) {
            view = null;
            return;
        }
        if (waiting) {
            return; // one batch at a time: its answer, or the 2 s command timeout, comes first
        }
        if (out == null) {
            out = nextBatch();
        }
        Batch batch = out;
        waiting = true;
        answer = new CompletableFuture<>();
        try {
            Round round = new Round(link, Sharing.USAGE);
            round.write(conn.async().<List<Object>>eval(script, ScriptOutputType.MULTI, redisKeys, batch.args()))
                    .whenComplete((r, e) -> link.execute(() -> answered(batch, r, e)));
            round.end();
        } catch (RuntimeException e) {
            waiting = false; // not sent: the same batch goes on the next beat
            answer.complete(null);
            throw e;
        }
    }

    private Batch nextBatch() {
        Map<Object, Row> current = new IdentityHashMap<>();
        for (Row r : ledger.rows(keys.get(), clients.get())) {
            current.put(r.owner(), r);
        }
        // Objects gone since (a key or client dropped by a reload) are read once more, so that
        // what they counted after the last batch is not lost.
        for (Map.Entry<Object, Sent> e : sent.entrySet()) {
            current.computeIfAbsent(e.getKey(), o -> ledger.reread(e.getValue().row));
        }
        boolean anything = false;
        Map<Sent, long[]> upTo = new IdentityHashMap<>();
        List<String> pairs = new ArrayList<>();
        for (Row r : current.values()) {
            Sent s = sent.computeIfAbsent(r.owner(), o -> new Sent(r));
            long[] now = {r.requests(), r.prompt(), r.completion(), r.cached()};
            for (int i = 0; i < COUNTS.length; i++) {
                long delta = now[i] - s.counts[i];
                if (delta != 0) {
                    pairs.add(field(r.kind(), r.id(), i));
                    pairs.add(Long.toString(delta));
                    anything = true;
                }
            }
            upTo.put(s, now);
        }
        long number = anything || full ? appliedBatch + 1 : appliedBatch;
        List<String> args = new ArrayList<>(List.of(link.instance(), Long.toString(number), full ? "1" : "0",
                Long.toString(startMillis), Long.toString(System.currentTimeMillis())));
        args.addAll(pairs);
        return new Batch(number, full, upTo, args.toArray(new String[0]));
    }

    private void answered(Batch batch, List<Object> reply, Throwable error) {
        waiting = false;
        if (error != null) {
            answer.completeExceptionally(error); // at shutdown: refused, or to be sent again
        } else {
            answer.complete(null);
        }
        if (error != null || reply == null || reply.isEmpty()) {
            if (error != null && RedisKeyStates.isErrorReply(error)) {
                // Refused (an ACL, an entry of ours of the wrong type): the last totals would go
                // on being shown as every instance's while they no longer are.
                view = null;
            }
            return; // sent again, unchanged, on the next beat Redis is up
        }
        out = null;
        if (RedisReplies.number(reply.get(0)) == 0) {
            // Redis no longer has this instance's batches: all it counted goes in the next one,
            // and the key states, lost with them, go again too.
            full = true;
            link.forgotten();
            sent.values().forEach(s -> s.counts = new long[4]);
            return;
        }
        full = false;
        appliedBatch = batch.number();
        batch.upTo().forEach((s, counts) -> s.counts = counts);
        Map<String, Long> totals = new HashMap<>();
        for (int i = 1; i + 1 < reply.size(); i += 2) {
            totals.put(RedisReplies.text(reply.get(i)), RedisReplies.number(reply.get(i + 1)));
        }
        IdentityHashMap<Object, long[]> counted = new IdentityHashMap<>();
        Set<Object> live = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
        for (Row r : ledger.rows(keys.get(), clients.get())) {
            live.add(r.owner());
        }
        sent.entrySet().removeIf(e -> !live.contains(e.getKey()) && batch.upTo().containsKey(e.getValue()));
        sent.forEach((owner, s) -> counted.put(owner, s.counts.clone()));
        Long since = totals.remove("since");
        view = new Snapshot(since == null ? startMillis : since, totals, counted);
    }

    static String field(char kind, String id, int count) {
        return kind + ":" + id + ":" + COUNTS[count];
    }

    /**
     * The totals of one answer, and what this instance had counted when it was applied: a row
     * over all instances is the total plus this instance's counts since.
     */
    private record Snapshot(long sinceEpochMillis, Map<String, Long> totals, Map<Object, long[]> counted)
            implements UsageLedger.View {

        @Override
        public Row overAll(Row local) {
            long[] here = {local.requests(), local.prompt(), local.completion(), local.cached()};
            long[] before = counted.getOrDefault(local.owner(), new long[4]);
            long[] all = new long[4];
            for (int i = 0; i < 4; i++) {
                all[i] = totals.getOrDefault(field(local.kind(), local.id(), i), 0L) + here[i] - before[i];
            }
            return local.with(all[0], all[1], all[2], all[3]);
        }

        @Override
        public List<Row> modelsSeenElsewhere(Set<String> seenHere) {
            Map<String, long[]> models = new HashMap<>();
            for (Map.Entry<String, Long> e : totals.entrySet()) {
                String f = e.getKey();
                int end = f.lastIndexOf(':');
                if (!f.startsWith("m:") || end < 2) {
                    continue;
                }
                String model = f.substring(2, end);
                int count = List.of(COUNTS).indexOf(f.substring(end + 1));
                if (count >= 0 && !seenHere.contains(model)) {
                    models.computeIfAbsent(model, m -> new long[4])[count] = e.getValue();
                }
            }
            List<Row> rows = new ArrayList<>();
            models.forEach((m, c) -> rows.add(new Row(Row.MODEL, m, null, c[0], c[1], c[2], c[3])));
            return rows;
        }
    }
}
