package io.megallm.proxy.server.usage;

import io.megallm.proxy.http.Exchange;
import io.megallm.proxy.http.JsonText;
import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.server.clients.Client;
import io.megallm.proxy.server.clients.ClientGate;

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
 * so at most {@value #MAX_MODELS} distinct names are kept and the rest count as {@code other}.
 */
public final class UsageLedger {

    static final int MAX_MODELS = 100;
    static final String OTHER = "other";
    static final String NONE = "(none)";

    private final LongSupplier epochMillis;
    private final long since;
    private final Map<String, Totals> byModel = new ConcurrentHashMap<>();

    public UsageLedger(LongSupplier epochMillis) {
        this.epochMillis = epochMillis;
        this.since = epochMillis.getAsLong();
    }

    /** Counts an ended exchange that went to the relay; others are not usage. */
    public void onEnd(Exchange exchange) {
        if (exchange.attempts() == 0) {
            return;
        }
        Totals t = totalsFor(exchange.model() == null ? NONE : exchange.model());
        t.requests.increment();
        Client client = ClientGate.clientOf(exchange);
        if (exchange.hasUsage()) {
            t.prompt.add(exchange.promptTokens());
            t.completion.add(exchange.completionTokens());
            t.cached.add(exchange.cachedTokens());
            if (client != null) {
                client.addTokens(epochMillis.getAsLong() / 1000, exchange.promptTokens(), exchange.completionTokens(),
                        exchange.cachedTokens());
            }
        }
    }

    private Totals totalsFor(String model) {
        Totals t = byModel.get(model);
        if (t != null) {
            return t;
        }
        if (byModel.size() >= MAX_MODELS) {
            return byModel.computeIfAbsent(OTHER, m -> new Totals());
        }
        return byModel.computeIfAbsent(model, m -> new Totals());
    }

    /** {@code GET /admin/usage}: keys and client keys masked, clients also by name. */
    public String json(Collection<ApiKey> keys, Collection<Client> clients) {
        StringBuilder b = new StringBuilder(512);
        b.append("{\"since\":").append(JsonText.quote(Instant.ofEpochMilli(since).toString()));
        b.append(",\"by_key\":[");
        boolean first = true;
        for (ApiKey k : keys) {
            b.append(first ? "" : ",").append("{\"key\":").append(JsonText.quote(k.masked()))
                    .append(",\"requests\":").append(k.requests());
            tokens(b, k.promptTokens(), k.completionTokens(), k.cachedTokens());
            b.append('}');
            first = false;
        }
        b.append("],\"by_model\":[");
        first = true;
        List<Map.Entry<String, Totals>> models = new ArrayList<>(byModel.entrySet());
        models.sort(Map.Entry.comparingByKey());
        for (Map.Entry<String, Totals> e : models) {
            Totals t = e.getValue();
            b.append(first ? "" : ",").append("{\"model\":").append(JsonText.quote(e.getKey()))
                    .append(",\"requests\":").append(t.requests.sum());
            tokens(b, t.prompt.sum(), t.completion.sum(), t.cached.sum());
            b.append('}');
            first = false;
        }
        b.append("],\"by_client\":[");
        first = true;
        List<Client> sorted = new ArrayList<>(clients);
        sorted.sort(Comparator.comparing(Client::label));
        for (Client c : sorted) {
            b.append(first ? "" : ",").append("{\"client\":").append(JsonText.quote(ApiKey.mask(c.spec().key())))
                    .append(",\"name\":").append(c.spec().name() == null ? "null" : JsonText.quote(c.spec().name()))
                    .append(",\"requests\":").append(c.requests());
            tokens(b, c.promptTokens(), c.completionTokens(), c.cachedTokens());
            b.append(",\"open_streams\":").append(c.openStreams()).append('}');
            first = false;
        }
        return b.append("]}").toString();
    }

    /** {@code megallm_tokens_total{kind,model}} and {@code megallm_client_tokens_total{client,kind}}. */
    public String prometheus(Collection<Client> clients) {
        StringBuilder b = new StringBuilder(256);
        b.append("# HELP megallm_tokens_total Tokens the upstream reported, by kind and model as the request named it.\n")
                .append("# TYPE megallm_tokens_total counter\n");
        for (Map.Entry<String, Totals> e : byModel.entrySet()) {
            Totals t = e.getValue();
            sample(b, "megallm_tokens_total", "kind", "prompt", "model", e.getKey(), t.prompt.sum());
            sample(b, "megallm_tokens_total", "kind", "completion", "model", e.getKey(), t.completion.sum());
            sample(b, "megallm_tokens_total", "kind", "cached", "model", e.getKey(), t.cached.sum());
        }
        b.append("# HELP megallm_client_tokens_total Tokens per client (name, else masked key) and kind.\n")
                .append("# TYPE megallm_client_tokens_total counter\n");
        for (Client c : clients) {
            sample(b, "megallm_client_tokens_total", "client", c.label(), "kind", "prompt", c.promptTokens());
            sample(b, "megallm_client_tokens_total", "client", c.label(), "kind", "completion", c.completionTokens());
            sample(b, "megallm_client_tokens_total", "client", c.label(), "kind", "cached", c.cachedTokens());
        }
        return b.toString();
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
