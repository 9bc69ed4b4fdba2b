package io.megallm.proxy.server.usage;

import io.megallm.proxy.http.Exchange;
import io.megallm.proxy.http.JsonText;
import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.server.clients.Client;
import io.megallm.proxy.server.clients.ClientGate;
import io.megallm.proxy.server.metrics.LabelSums;
import io.megallm.proxy.server.metrics.ScrapeText;

import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.LongSupplier;

/**
 * Token and request totals since start (contract §13), by model here; by pool key on the keys
 * themselves and by client on the clients. Fed once per relayed exchange as it ends, from the
 * counts the relay read out of the upstream's own {@code usage}. Model names come from clients,
 * so at most {@value #MAX_MODELS} distinct names are kept and the rest count as {@code other}; and
 * a name takes one of those rows only once the upstream answered it with a 2xx and only if it is
 * at most {@value #MAX_MODEL_NAME} visible ASCII characters. Otherwise a client could fill the
 * rows with names the upstream refuses, or hold megabytes of one name in memory for good and in
 * every scrape of {@code /metrics}.
 * With REDIS_URL, {@code /admin/usage} adds the other instances' counts ({@link AllInstances});
 * {@code /metrics} stays this instance's own, since Prometheus sums the instances it scrapes.
 */
public final class UsageLedger {

    static final int MAX_MODELS = 100;
    /** Longer than any real model name; the access log shows as many characters of it. */
    static final int MAX_MODEL_NAME = 100;
    static final String OTHER = "other";
    static final String NONE = "(none)";

    private final LongSupplier epochMillis;
    private final long since;
    private final Map<String, Totals> byModel = new ConcurrentHashMap<>();
    private final LabelSums<Client> clientTokens = new LabelSums<>(3, Client::label, (c, row) -> {
        row[0] += c.promptTokens();
        row[1] += c.completionTokens();
        row[2] += c.cachedTokens();
    });

    public UsageLedger(LongSupplier epochMillis) {
        this.epochMillis = epochMillis;
        this.since = epochMillis.getAsLong();
    }

    /** Counts an ended exchange that went to the relay; others are not usage. */
    public void onEnd(Exchange exchange) {
        if (exchange.attempts() == 0) {
            return;
        }
        int status = exchange.status();
        Totals t = totalsFor(exchange.model(), status >= 200 && status < 300);
        t.requests.increment();
        Client client = ClientGate.clientOf(exchange);
        if (exchange.hasUsage()) {
            t.prompt.add(exchange.promptTokens());
            t.completion.add(exchange.completionTokens());
            t.cached.add(exchange.cachedTokens());
            if (client != null) {
                long now = epochMillis.getAsLong() / 1000;
                client.addTokens(now, exchange.promptTokens(), exchange.completionTokens(), exchange.cachedTokens());
                long beyond = exchange.documents() - exchange.completionTokens();
                if (beyond > 0 && exchange.ending() != Exchange.Ending.COMPLETE) {
                    // Cut after a usage that was not the last: Anthropic's message_start says the
                    // prompt and 1 output token, the output comes at the end. Its events read
                    // since are charged as any cut answer's are, a token each.
                    client.chargeCutAnswer(now, (int) beyond, 0);
                }
            }
        } else if (client != null && exchange.documentsWithoutUsage() >= 0
                && exchange.ending() != Exchange.Ending.COMPLETE) {
            // Cut before its usage: unknown in the tables, but the limits are charged an estimate.
            client.chargeCutAnswer(epochMillis.getAsLong() / 1000, exchange.documentsWithoutUsage(),
                    exchange.request().bodyBytes());
        }
    }

    /** {@code model} null: the request named none. */
    private Totals totalsFor(String model, boolean answered) {
        String name = model == null ? NONE : model;
        Totals t = byModel.get(name);
        if (t != null) {
            return t;
        }
        boolean ownRow = model == null || (answered && nameable(model));
        if (!ownRow || byModel.size() >= MAX_MODELS) {
            return byModel.computeIfAbsent(OTHER, m -> new Totals());
        }
        return byModel.computeIfAbsent(name, m -> new Totals());
    }

    /** A name fit for a row, a metrics label and the shared state: short, visible ASCII only. */
    static boolean nameable(String model) {
        int n = model.length();
        if (n == 0 || n > MAX_MODEL_NAME) {
            return false;
        }
        for (int i = 0; i < n; i++) {
            char c = model.charAt(i);
            if (c < 0x21 || c > 0x7e) {
                return false;
            }
        }
        return true;
    }

    /**
     * One line of {@code /admin/usage}: a pool key ({@code KEY}, by its SHA-256 id), a model
     * ({@code MODEL}, by name) or a client ({@code CLIENT}, by its key's SHA-256), with this
     * instance's counts. {@code owner} is the live object counting (an {@link ApiKey}, a
     * {@link Client}, the model's totals; null for a model only other instances have seen).
     */
    public record Row(char kind, String id, Object owner, long requests, long prompt, long completion, long cached) {

        public static final char KEY = 'k';
        public static final char MODEL = 'm';
        public static final char CLIENT = 'c';

        public Row with(long requests, long prompt, long completion, long cached) {
            return new Row(kind, id, owner, requests, prompt, completion, cached);
        }
    }

    /** The totals over every instance sharing a Redis (contract §14), when they are known. */
    public interface AllInstances {

        /** The latest view, or null while Redis is away: then this instance shows its own figures. */
        View view();
    }

    /** Over all instances, as of one answer from Redis plus what this instance counted since. */
    public interface View {

        long sinceEpochMillis();

        /** {@code local} (this instance's row) with the counts of every instance. */
        Row overAll(Row local);

        /** Models other instances counted that this one never saw. */
        List<Row> modelsSeenElsewhere(java.util.Set<String> seenHere);
    }

    private volatile AllInstances allInstances;

    /** With REDIS_URL: /admin/usage shows every instance's traffic while Redis answers. */
    public void share(AllInstances allInstances) {
        this.allInstances = allInstances;
    }

    /** This instance's rows, keys, then models, then clients: what it shows and what it shares. */
    public List<Row> rows(Collection<ApiKey> keys, Collection<Client> clients) {
        List<Row> rows = new ArrayList<>(keys.size() + byModel.size() + clients.size());
        for (ApiKey k : keys) {
            rows.add(rowOf(k));
        }
        for (Map.Entry<String, Totals> e : byModel.entrySet()) {
            rows.add(rowOf(e.getKey(), e.getValue()));
        }
        for (Client c : clients) {
            rows.add(rowOf(c));
        }
        return rows;
    }

    /** The row of an owner a previous {@link #rows} returned, read again (also after a reload dropped it). */
    public Row reread(Row row) {
        if (row.owner() instanceof ApiKey k) {
            return rowOf(k);
        }
        if (row.owner() instanceof Client c) {
            return rowOf(c);
        }
        return row.owner() instanceof Totals t ? rowOf(row.id(), t) : row;
    }

    private static Row rowOf(ApiKey k) {
        return new Row(Row.KEY, k.id(), k, k.requests(), k.promptTokens(), k.completionTokens(), k.cachedTokens());
    }

    private static Row rowOf(Client c) {
        return new Row(Row.CLIENT, c.id(), c, c.requests(), c.promptTokens(), c.completionTokens(), c.cachedTokens());
    }

    private static Row rowOf(String model, Totals t) {
        return new Row(Row.MODEL, model, t, t.requests.sum(), t.prompt.sum(), t.completion.sum(), t.cached.sum());
    }

    /**
     * {@code GET /admin/usage}: keys and client keys masked, clients also by name. With REDIS_URL,
     * {@code scope} says whose traffic the figures count: {@code all_instances} while Redis
     * answers, {@code this_instance} while it is away (with {@code shared_state}).
     */
    public String json(Collection<ApiKey> keys, Collection<Client> clients) {
        AllInstances shared = allInstances;
        View view = shared == null ? null : shared.view();
        StringBuilder b = new StringBuilder(512);
        b.append("{\"since\":").append(JsonText.quote(Instant.ofEpochMilli(
                view == null ? since : Math.min(since, view.sinceEpochMillis())).toString()));
        if (shared != null) {
            b.append(",\"scope\":\"").append(view == null ? "this_instance" : "all_instances")
                    .append("\",\"shared_state\":\"").append(view == null ? "unavailable" : "ok").append('"');
        }
        b.append(",\"by_key\":[");
        boolean first = true;
        for (ApiKey k : keys) {
            Row r = over(view, rowOf(k));
            b.append(first ? "" : ",").append("{\"key\":").append(JsonText.quote(k.masked()))
                    .append(",\"requests\":").append(r.requests());
            tokens(b, r);
            b.append('}');
            first = false;
        }
        b.append("],\"by_model\":[");
        first = true;
        List<Row> models = new ArrayList<>();
        for (Map.Entry<String, Totals> e : byModel.entrySet()) {
            models.add(over(view, rowOf(e.getKey(), e.getValue())));
        }
        if (view != null) {
            models.addAll(view.modelsSeenElsewhere(byModel.keySet()));
        }
        models.sort(Comparator.comparing(Row::id));
        for (Row r : models) {
            b.append(first ? "" : ",").append("{\"model\":").append(JsonText.quote(r.id()))
                    .append(",\"requests\":").append(r.requests());
            tokens(b, r);
            b.append('}');
            first = false;
        }
        b.append("],\"by_client\":[");
        first = true;
        List<Client> sorted = new ArrayList<>(clients);
        sorted.sort(Comparator.comparing(Client::label));
        for (Client c : sorted) {
            Row r = over(view, rowOf(c));
            b.append(first ? "" : ",").append("{\"client\":").append(JsonText.quote(ApiKey.mask(c.spec().key())))
                    .append(",\"name\":").append(c.spec().name() == null ? "null" : JsonText.quote(c.spec().name()))
                    .append(",\"requests\":").append(r.requests());
            tokens(b, r);
            // Streams open now are this instance's own (max_streams is per instance).
            b.append(",\"open_streams\":").append(c.openStreams()).append('}');
            first = false;
        }
        return b.append("]}").toString();
    }

    private static Row over(View view, Row local) {
        return view == null ? local : view.overAll(local);
    }

    private static void tokens(StringBuilder b, Row r) {
        tokens(b, r.prompt(), r.completion(), r.cached());
    }

    /** {@code megallm_tokens_total{kind,model}} and {@code megallm_client_tokens_total{client,kind}}, appended to {@code b}. */
    public void prometheus(ScrapeText scrape, Collection<Client> clients) {
        StringBuilder b = scrape.text();
        b.append("# HELP megallm_tokens_total Tokens the upstream reported, by kind and model as the request named it.\n")
                .append("# TYPE megallm_tokens_total counter\n");
        for (Map.Entry<String, Totals> e : byModel.entrySet()) {
            Totals t = e.getValue();
            sample(b, "megallm_tokens_total", "kind", "prompt", "model", e.getKey(), t.prompt.sum());
            sample(b, "megallm_tokens_total", "kind", "completion", "model", e.getKey(), t.completion.sum());
            sample(b, "megallm_tokens_total", "kind", "cached", "model", e.getKey(), t.cached.sum());
            scrape.spill();
        }
        b.append("# HELP megallm_client_tokens_total Tokens per client (name, else masked key) and kind.\n")
                .append("# TYPE megallm_client_tokens_total counter\n");
        // By label: two clients shown the same (a warning at load says which) are one series,
        // summed, as Prometheus' format wants every series once; one of them removed or renamed
        // leaves its tokens behind, so that the sum does not go down.
        Map<String, long[]> byLabel = clientTokens.sums(clients);
        byLabel.forEach((label, row) -> {
            sample(b, "megallm_client_tokens_total", "client", label, "kind", "prompt", row[0]);
            sample(b, "megallm_client_tokens_total", "client", label, "kind", "completion", row[1]);
            sample(b, "megallm_client_tokens_total", "client", label, "kind", "cached", row[2]);
            scrape.spill();
        });
    }

    private static void tokens(StringBuilder b, long prompt, long completion, long cached) {
        b.append(",\"prompt_tokens\":").append(prompt)
                .append(",\"completion_tokens\":").append(completion)
                .append(",\"cached_tokens\":").append(cached);
    }

    private static void sample(StringBuilder b, String name, String l1, String v1, String l2, String v2, long value) {
        b.append(name).append('{').append(l1).append("=\"").append(escape(v1)).append("\",").append(l2)
                .append("=\"").append(escape(v2)).append("\"} ").append(value).append('\n');
    }

    /** A label value as Prometheus' text format wants it: backslash, quote and newline escaped. */
    static String escape(String v) {
        StringBuilder b = new StringBuilder(v.length());
        for (int i = 0; i < v.length(); i++) {
            char c = v.charAt(i);
            switch (c) {
                case '\\' -> b.append("\\\\");
                case '"' -> b.append("\\\"");
                case '\n' -> b.append("\\n");
                default -> b.append(c < 0x20 ? ' ' : c);
            }
        }
        return b.toString();
    }

    private static final class Totals {
        final LongAdder requests = new LongAdder();
        final LongAdder prompt = new LongAdder();
        final LongAdder completion = new LongAdder();
        final LongAdder cached = new LongAdder();
    }
}
