package io.megallm.proxy.server.clients;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * A model of the client limits (contract §13, README "Usage and limits") run against the real
 * Client through random sequences on an explicit clock: requests of random clients pass the head
 * step and the body step (or are refused at either, or are abandoned between them), answers end
 * with random usage, are cut before it (charged the estimate), or end without any; the clock
 * crosses second, minute and UTC-day edges; reloads change a client's limits mid-window. The
 * oracle below is written from the README's text, not from the code: a 60-second sliding window of
 * the requests admitted on the head (rpm) and of the tokens charged when answers end (tpm), a
 * per-UTC-day sum (daily_tokens), open streams (max_streams), the allow-list (models), and the
 * answers in flight times the expected answer. After every step the refusal (status, code,
 * Retry-After) and the counts (in flight, open streams, requests, tokens) must be the model's.
 * Fixed seeds: a failure prints the seed and the last steps.
 */
class ClientLimitsModelTest {

    /** 2025-12-06T23:57:00Z: three minutes before a UTC midnight, so that runs cross one. */
    private static final long START = 1_764_979_200L + 86_400 - 180;
    /**
     * Requests count against rpm only while the client has one: a reload that gives a client an
     * rpm starts it from an empty window (the README is silent; tpm's window counts always).
     */
    private static final boolean RPM_COUNTED_UNLIMITED = false;
    private static final String[] MODELS = {"m-a", "m-b", "m-c"};

    @Test
    void randomSequencesFollowTheModel() {
        for (long seed = 1; seed <= 400; seed++) {
            new Run(seed).go(300);
        }
    }

    /** What the README says one client's limits and counts are. */
    private static final class Expected {
        ClientSpec spec;
        /** Seconds of the requests admitted on the head (rpm counts them, refused later or not). */
        final List<Long> requestSeconds = new ArrayList<>();
        /** Second and tokens of each charge (an answer's usage, or a cut answer's estimate). */
        final List<long[]> charges = new ArrayList<>();
        int inFlight;
        int streams;
        long expected;
        long requests;
        long prompt;
        long completion;

        long requestsIn(long now) {
            return requestSeconds.stream().filter(s -> s > now - 60 && s <= now).count();
        }

        long tokensIn(long now) {
            long sum = 0;
            for (long[] c : charges) {
                if (c[0] > now - 60 && c[0] <= now) {
                    sum = sat(sum + c[1]);
                }
            }
            return sum;
        }

        long tokensOnDay(long now) {
            long day = Math.floorDiv(now, 86_400L);
            long sum = 0;
            for (long[] c : charges) {
                if (Math.floorDiv(c[0], 86_400L) == day) {
                    sum = sat(sum + c[1]);
                }
            }
            return sum;
        }

        long reserved(int n) {
            if (n <= 0 || expected <= 0) {
                return 0;
            }
            return expected > Long.MAX_VALUE / n ? Long.MAX_VALUE : expected * n;
        }

        /**
         * The refusals this request would get on its token limits, by code with their Retry-After:
         * daily_tokens until UTC midnight; tpm the seconds until the tokens in the window plus the
         * reserved fall under the limit, 60 when the reserved alone fill it.
         */
        Map<String, Long> tokenRefusals(long now, int inFlightNow) {
            Map<String, Long> out = new HashMap<>();
            long reserved = reserved(inFlightNow);
            if (spec.dailyTokens() > 0 && sat(tokensOnDay(now) + reserved) >= spec.dailyTokens()) {
                out.put("daily_tokens", 86_400 - Math.floorMod(now, 86_400L));
            }
            if (spec.tpm() > 0 && sat(tokensIn(now) + reserved) >= spec.tpm()) {
                long wait = 60;
                if (reserved < spec.tpm()) {
                    for (long t = 1; t <= 60; t++) {
                        // Only what is counted now: nothing new lands meanwhile.
                        long left = 0;
                        for (long[] c : charges) {
                            if (c[0] > now + t - 60 && c[0] <= now) {
                                left = sat(left + c[1]);
                            }
                        }
                        if (sat(left + reserved) < spec.tpm()) {
                            wait = t;
                            break;
                        }
                    }
                }
                out.put("tpm", wait);
            }
            return out;
        }

        long rpmWait(long now) {
            for (long t = 1; t <= 60; t++) {
                long now2 = now + t;
                long left = requestSeconds.stream().filter(s -> s > now2 - 60 && s <= now).count();
                if (left < spec.rpm()) {
                    return t;
                }
            }
            return 60;
        }

        void charge(long now, long tokens) {
            if (tokens > 0) {
                charges.add(new long[] {now, tokens});
            }
        }

        /** Up at once to a larger answer, down by an eighth of the gap per smaller one. */
        void expect(long total) {
            expected = total >= expected ? total : expected - (expected - total) / 8;
        }
    }

    private static long sat(long v) {
        return v < 0 ? Long.MAX_VALUE : v;
    }

    private enum Phase { HEAD, IN_FLIGHT }

    private static final class Req {
        final int id;
        final int client;
        Phase phase = Phase.HEAD;
        boolean stream;
        String model;
        int bodyBytes;

        Req(int id, int client) {
            this.id = id;
            this.client = client;
        }
    }

    private static final class Run {
        final long seed;
        final Random rnd;
        long now = START;
        final List<Client> clients = new ArrayList<>();
        final List<Expected> model = new ArrayList<>();
        final List<Req> requests = new ArrayList<>();
        final List<String> log = new ArrayList<>();
        int nextId;

        Run(long seed) {
            this.seed = seed;
            this.rnd = new Random(seed);
            for (int i = 0; i < 3; i++) {
                ClientSpec spec = randomSpec(i);
                clients.add(new Client(spec));
                Expected e = new Expected();
                e.spec = spec;
                model.add(e);
                note("client " + i + ": " + describe(spec));
            }
        }

        ClientSpec randomSpec(int i) {
            long rpm = rnd.nextInt(3) == 0 ? 0 : 1 + rnd.nextInt(5);
            long tpm = rnd.nextInt(3) == 0 ? 0 : 50 + rnd.nextInt(500);
            long daily = rnd.nextInt(3) == 0 ? 0 : 200 + rnd.nextInt(3000);
            int streams = rnd.nextInt(2) == 0 ? 0 : 1 + rnd.nextInt(2);
            Set<String> models = switch (rnd.nextInt(3)) {
                case 0 -> Set.of("m-a");
                case 1 -> Set.of("m-a", "m-b");
                default -> null;
            };
            return new ClientSpec("ck-model-test-00000000000" + i, "c" + i, rpm, tpm, daily, streams, models);
        }

        static String describe(ClientSpec s) {
            return "rpm=" + s.rpm() + " tpm=" + s.tpm() + " daily=" + s.dailyTokens() + " streams=" + s.maxStreams()
                    + " models=" + s.models();
        }

        void note(String line) {
            log.add("t=" + (now - START) + " " + line);
        }

        void go(int steps) {
            try {
                for (int i = 0; i < steps; i++) {
                    step();
                    check();
                }
            } catch (AssertionError | RuntimeException e) {
                int from = Math.max(0, log.size() - 40);
                fail("seed " + seed + ": " + e.getMessage() + "\nsteps:\n  "
                        + String.join("\n  ", log.subList(from, log.size())), e);
            }
        }

        void step() {
            int r = rnd.nextInt(100);
            if (r < 30) {
                head(rnd.nextInt(clients.size()));
            } else if (r < 55) {
                Req q = pick(Phase.HEAD);
                if (q != null) {
                    body(q);
                }
            } else if (r < 80) {
                Req q = pick(Phase.IN_FLIGHT);
                if (q != null) {
                    end(q);
                }
            } else if (r < 83) {
                Req q = pick(Phase.HEAD);
                if (q != null) {
                    // The client left while its body was read: it never reaches the relay.
                    requests.remove(q);
                    note("request " + q.id + " abandoned before its body");
                }
            } else if (r < 86) {
                reload(rnd.nextInt(clients.size()));
            } else {
                advance();
            }
        }

        Req pick(Phase phase) {
            List<Req> of = requests.stream().filter(q -> q.phase == phase).toList();
            return of.isEmpty() ? null : of.get(rnd.nextInt(of.size()));
        }

        void advance() {
            long before = now;
            switch (rnd.nextInt(6)) {
                case 0 -> now += 1;
                case 1 -> now += 1 + rnd.nextInt(10);
                case 2 -> now += 30 + rnd.nextInt(40);
                case 3 -> now += 60 - Math.floorMod(now, 60L) - 1 + rnd.nextInt(2); // to a minute's edge
                case 4 -> now += 86_400 - Math.floorMod(now, 86_400L) - 1 + rnd.nextInt(2); // to midnight
                default -> now += 59 + rnd.nextInt(3);
            }
            note("clock +" + (now - before));
        }

        void head(int i) {
            Client c = clients.get(i);
            Expected e = model.get(i);
            Map<String, Long> want = e.tokenRefusals(now, e.inFlight);
            if (e.spec.rpm() > 0 && e.requestsIn(now) >= e.spec.rpm()) {
                want.put("rpm", e.rpmWait(now));
            }
            Client.Refusal got = c.admitRequest(now);
            Req q = new Req(nextId++, i);
            note("request " + q.id + " of client " + i + " head: " + show(got) + " (model " + want + ")");
            compare(want, got);
            if (got == null) {
                if (RPM_COUNTED_UNLIMITED || e.spec.rpm() > 0) {
                    e.requestSeconds.add(now);
                }
                e.requests++;
                requests.add(q);
            }
        }

        void body(Req q) {
            Client c = clients.get(q.client);
            Expected e = model.get(q.client);
            q.stream = rnd.nextBoolean();
            q.model = rnd.nextInt(8) == 0 ? null : MODELS[rnd.nextInt(MODELS.length)];
            q.bodyBytes = rnd.nextInt(3) == 0 ? 0 : rnd.nextInt(4000);
            Map<String, Long> want = new HashMap<>();
            boolean allowed = e.spec.models() == null || (q.model != null && e.spec.models().contains(q.model));
            if (!allowed) {
                want.put("model_not_allowed", -1L);
            } else {
                want.putAll(e.tokenRefusals(now, e.inFlight));
                if (q.stream && e.spec.maxStreams() > 0 && e.streams >= e.spec.maxStreams()) {
                    want.put("max_streams", null);
                }
            }
            Client.Refusal got = c.admitBody(now, q.model, q.stream);
            note("request " + q.id + " body (model " + q.model + (q.stream ? ", stream" : "") + "): " + show(got)
                    + " (model " + want + ")");
            compare(want, got);
            if (got == null) {
                q.phase = Phase.IN_FLIGHT;
                e.inFlight++;
                if (q.stream) {
                    e.streams++;
                }
            } else {
                requests.remove(q);
            }
        }

        void end(Req q) {
            Client c = clients.get(q.client);
            Expected e = model.get(q.client);
            requests.remove(q);
            switch (rnd.nextInt(5)) {
                case 0, 1 -> {
                    long prompt = randomCount();
                    long completion = randomCount();
                    note("request " + q.id + " ends with usage " + prompt + "/" + completion);
                    c.addTokens(now, prompt, completion, 0);
                    e.prompt += prompt;
                    e.completion += completion;
                    if (prompt + completion > 0) {
                        e.expect(prompt + completion);
                        e.charge(now, prompt + completion);
                    }
                }
                case 2 -> {
                    int documents = rnd.nextInt(60);
                    note("request " + q.id + " cut after " + documents + " events, body " + q.bodyBytes + " bytes");
                    c.chargeCutAnswer(now, documents, q.bodyBytes);
                    if (e.spec.tpm() > 0 || e.spec.dailyTokens() > 0) {
                        // The prompt at four bytes a token, at most the expected answer; a token an event.
                        long prompt = e.expected > 0 ? Math.min(q.bodyBytes / 4, e.expected) : q.bodyBytes / 4;
                        e.charge(now, prompt + documents);
                    }
                }
                default -> note("request " + q.id + " ends without usage (an error, or not asked)");
            }
            c.ended(q.stream);
            e.inFlight--;
            if (q.stream) {
                e.streams--;
            }
        }

        long randomCount() {
            return switch (rnd.nextInt(6)) {
                case 0 -> 0;
                case 1 -> rnd.nextInt(10);
                case 2 -> 1_000_000_000_000L; // the scanner's cap: a hostile upstream's count
                default -> rnd.nextInt(400);
            };
        }

        void reload(int i) {
            ClientSpec spec = randomSpec(i);
            clients.get(i).update(spec);
            model.get(i).spec = spec;
            note("reload client " + i + ": " + describe(spec));
        }

        void compare(Map<String, Long> want, Client.Refusal got) {
            if (got == null) {
                if (!want.isEmpty()) {
                    throw new AssertionError("admitted, the model refuses " + want);
                }
                return;
            }
            if (!want.containsKey(got.code())) {
                throw new AssertionError("refused " + show(got) + ", the model " + (want.isEmpty() ? "admits" : "refuses " + want));
            }
            int status = got.code().equals("model_not_allowed") ? 403 : 429;
            if (got.status() != status) {
                throw new AssertionError("status " + got.status() + " for " + got.code());
            }
            if (status == 429 && got.retryAfterSeconds() < 1) {
                throw new AssertionError("a 429 without Retry-After: " + show(got));
            }
            // One limit is named; the wait is the longest of those that refuse.
            long max = want.values().stream().filter(v -> v != null).mapToLong(Long::longValue).max().orElse(-1);
            if (max > got.retryAfterSeconds()) {
                throw new AssertionError("Retry-After " + got.retryAfterSeconds() + " for " + got.code()
                        + ", but the request is refused for " + max + " s: " + want);
            }
            Long retry = want.get(got.code());
            if (retry != null && retry != got.retryAfterSeconds()) {
                throw new AssertionError("Retry-After " + got.retryAfterSeconds() + " for " + got.code()
                        + ", the model says " + retry);
            }
        }

        void check() {
            for (int i = 0; i < clients.size(); i++) {
                Client c = clients.get(i);
                Expected e = model.get(i);
                if (c.inFlight() != e.inFlight || c.openStreams() != e.streams || c.requests() != e.requests
                        || c.promptTokens() != e.prompt || c.completionTokens() != e.completion) {
                    throw new AssertionError("client " + i + ": inFlight " + c.inFlight() + "/" + e.inFlight
                            + " streams " + c.openStreams() + "/" + e.streams + " requests " + c.requests() + "/"
                            + e.requests + " prompt " + c.promptTokens() + "/" + e.prompt + " completion "
                            + c.completionTokens() + "/" + e.completion + " (real/model)");
                }
            }
        }

        static String show(Client.Refusal r) {
            return r == null ? "admitted" : r.status() + " " + r.code() + " retry=" + r.retryAfterSeconds();
        }
    }
}
