package io.megallm.proxy.server.usage;

import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.DefaultLastHttpContent;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import org.junit.jupiter.api.Test;

import java.net.http.HttpRequest;
import java.net.http.HttpResponse.BodyHandlers;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** Contract §13 over real sockets: usage read from relayed bytes, and every client limit. */
class UsageAndLimitsTest {

    private static final String JSON = "{\"id\":\"c1\",\"choices\":[{\"message\":{\"content\":\"the usage: none\"}}],"
            + "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":38,\"total_tokens\":50,"
            + "\"prompt_tokens_details\":{\"cached_tokens\":4}}}";
    /** A stream with include_usage, cut into chunks so that the usage straddles two of them. */
    private static final List<String> STREAM = List.of(
            "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tok",
            "ens\":21,\"completion_tokens\":9,\"total_tokens\":30}}\n\n",
            "data: [DONE]\n\n");

    private static MockUpstream.Behavior sse(List<String> chunks) {
        return (ctx, req) -> {
            HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
            head.headers().set(HttpHeaderNames.CONTENT_TYPE, "text/event-stream");
            HttpUtil.setTransferEncodingChunked(head, true);
            ctx.write(head);
            for (String c : chunks) {
                ctx.writeAndFlush(new DefaultHttpContent(Unpooled.copiedBuffer(c, StandardCharsets.UTF_8)));
            }
            ctx.writeAndFlush(new DefaultLastHttpContent()).addListener(ChannelFutureListener.CLOSE_ON_FAILURE);
        };
    }

    private static java.net.http.HttpResponse<String> chat(ProxyUnderTest p, String clientKey, String body)
            throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body));
        if (clientKey != null) {
            b.header("Authorization", "Bearer " + clientKey);
        }
        return p.send(b);
    }

    private static String accessLine(ProxyUnderTest p, String requestId) throws InterruptedException {
        for (int i = 0; i < 400; i++) {
            List<String> hits = p.logLines().stream().filter(l -> l.startsWith("INFO megallm.access - "))
                    .flatMap(l -> l.lines()).filter(l -> l.contains(" rid=" + requestId + " ")).toList();
            if (!hits.isEmpty()) {
                return hits.get(0);
            }
            // Access lines are batched for up to 100 ms: poll for it, bounded.
            Thread.sleep(25);
        }
        throw new AssertionError("no access line for " + requestId);
    }

    @Test
    void aJsonAnswersUsageIsCountedPerKeyModelAndInTheAccessLog() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            p.upstream.otherwise(MockUpstream.json(200, JSON));
            var r = p.send(HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                    .header("Content-Type", "application/json").header("X-Request-Id", "usage-json-1")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"gpt-4o\",\"messages\":[]}")));
            assertEquals(JSON, r.body(), "the answer's bytes are unchanged");
            assertTrue(accessLine(p, "usage-json-1").endsWith(" tokens=12/38"));

            String usage = p.get("/admin/usage").body();
            assertTrue(usage.contains("{\"model\":\"gpt-4o\",\"requests\":1,\"prompt_tokens\":12,\"completion_tokens\":38,"
                    + "\"cached_tokens\":4}"), usage);
            assertTrue(usage.contains("{\"key\":\"" + ApiKey.mask(p.keys.get(0)) + "\",\"requests\":1,\"prompt_tokens\":12,"
                    + "\"completion_tokens\":38,\"cached_tokens\":4}"), usage);
            String keys = p.get("/admin/keys").body();
            assertTrue(keys.contains("\"tokens\":{\"prompt\":12,\"completion\":38,\"cached\":4}"), keys);
            String metrics = p.get("/metrics").body();
            assertTrue(metrics.contains("megallm_tokens_total{kind=\"prompt\",model=\"gpt-4o\"} 12"), metrics);
            assertTrue(metrics.contains("megallm_tokens_total{kind=\"cached\",model=\"gpt-4o\"} 4"), metrics);
        }
    }

    @Test
    void aModelNameTakesARowOnlyWhenShortVisibleAndAnswered() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            // The upstream refuses the model it does not know, as the real API does.
            p.upstream.otherwise((ctx, req) -> MockUpstream.json(
                    req.content().toString(StandardCharsets.UTF_8).contains("no-such-model") ? 404 : 200,
                    req.content().toString(StandardCharsets.UTF_8).contains("no-such-model")
                            ? "{\"error\":{\"message\":\"The model does not exist\"}}" : JSON).respond(ctx, req));
            String huge = "a0" + "x".repeat(200_000);
            for (String model : List.of(huge, "no-such-model", "gpt-4o\u202e", "gpt 4o", "gpt-4o")) {
                chat(p, null, "{\"model\":\"" + model + "\",\"messages\":[]}");
            }
            String usage = p.get("/admin/usage").body();
            assertTrue(usage.contains("{\"model\":\"gpt-4o\",\"requests\":1,"), usage);
            assertTrue(usage.contains("{\"model\":\"other\",\"requests\":4,"), usage);
            assertFalse(usage.contains("no-such-model") || usage.contains("xxxxxxxx") || usage.contains("gpt 4o"), usage);
            String metrics = p.get("/metrics").body();
            assertTrue(metrics.length() < 100_000, "a scrape holds no client's megabytes: " + metrics.length() + " chars");
            assertTrue(metrics.contains("megallm_tokens_total{kind=\"prompt\",model=\"other\"} 36"), metrics);
        }
    }

    @Test
    void aStreamsUsageIsReadAcrossChunksAndItsBytesReachTheClientUnchanged() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            p.upstream.otherwise(sse(STREAM));
            var r = p.send(HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                    .header("Content-Type", "application/json").header("X-Request-Id", "usage-sse-1")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"m\",\"stream\":true,"
                            + "\"stream_options\":{\"include_usage\":true}}")));
            assertEquals(String.join("", STREAM), r.body());
            assertTrue(accessLine(p, "usage-sse-1").endsWith(" tokens=21/9"));
        }
    }

    @Test
    void aStreamWithoutUsageIsUnknownNotZero() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            p.upstream.otherwise(sse(List.of("data: {\"choices\":[]}\n\n", "data: [DONE]\n\n")));
            p.send(HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                    .header("Content-Type", "application/json").header("X-Request-Id", "usage-none-1")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"m\",\"stream\":true}")));
            assertTrue(accessLine(p, "usage-none-1").endsWith(" tokens=-"));
            assertTrue(p.get("/admin/usage").body().contains("{\"model\":\"m\",\"requests\":1,\"prompt_tokens\":0"));
        }
    }

    @Test
    void everyClientLimitAnswers429Or403AndSendsNothing() throws Exception {
        Path dir = Files.createTempDirectory("clients");
        Path file = dir.resolve("clients.txt");
        Files.writeString(file, """
                # clients
                ck-rpm-000000000000000001 name=rpm-client rpm=2
                ck-tpm-000000000000000002 name=tpm-client tpm=10
                ck-mod-000000000000000003 name=model-client models=gpt-4o-mini
                ck-str-000000000000000004 name=stream-client max_streams=1
                ck-bad-000000000000000005 rpm=lots
                """);
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("PROXY_API_KEYS", "@" + file))) {
            p.upstream.otherwise(MockUpstream.json(200, JSON));
            String body = "{\"model\":\"gpt-4o\",\"messages\":[]}";

            assertEquals(200, chat(p, "ck-rpm-000000000000000001", body).statusCode());
            assertEquals(200, chat(p, "ck-rpm-000000000000000001", body).statusCode());
            int before = p.upstream.requestCount();
            var rpm = chat(p, "ck-rpm-000000000000000001", body);
            assertEquals(429, rpm.statusCode());
            assertTrue(rpm.body().contains("\"type\":\"rate_limit_exceeded\",\"code\":\"rpm\""), rpm.body());
            assertTrue(Long.parseLong(rpm.headers().firstValue("retry-after").orElse("0")) >= 1);
            assertTrue(rpm.headers().firstValue("x-should-retry").isEmpty(), "a minute at most: the SDK waits it out");
            assertEquals(before, p.upstream.requestCount(), "nothing sent upstream for a refused request");

            assertEquals(200, chat(p, "ck-tpm-000000000000000002", body).statusCode());
            var tpm = chat(p, "ck-tpm-000000000000000002", body);
            assertEquals(429, tpm.statusCode(), "50 tokens counted against tpm=10");
            assertTrue(tpm.body().contains("\"code\":\"tpm\""), tpm.body());

            var model = chat(p, "ck-mod-000000000000000003", body);
            assertEquals(403, model.statusCode());
            assertTrue(model.body().contains("\"code\":\"model_not_allowed\""), model.body());
            assertEquals(200, chat(p, "ck-mod-000000000000000003", "{\"model\":\"gpt-4o-mini\"}").statusCode());
            // The upstream reads the last "model": an allowed one before a null is no pass.
            int sent = p.upstream.requestCount();
            var twice = chat(p, "ck-mod-000000000000000003", "{\"model\":\"gpt-4o-mini\",\"model\":null}");
            assertEquals(403, twice.statusCode(), twice.body());
            assertTrue(twice.body().contains("\"code\":\"model_not_allowed\""), twice.body());
            assertEquals(sent, p.upstream.requestCount(), "nothing sent");

            assertEquals(401, chat(p, "ck-bad-000000000000000005", body).statusCode(), "a bad line gives no client");

            p.upstream.otherwise(MockUpstream.sse(50, 100));
            String stream = "{\"model\":\"gpt-4o\",\"stream\":true}";
            int seen = p.upstream.requestCount();
            CompletableFuture<java.net.http.HttpResponse<String>> first = p.client().sendAsync(
                    HttpRequest.newBuilder(p.uri("/v1/chat/completions")).header("Content-Type", "application/json")
                            .header("Authorization", "Bearer ck-str-000000000000000004")
                            .POST(HttpRequest.BodyPublishers.ofString(stream)).build(), BodyHandlers.ofString());
            for (int i = 0; i < 400 && p.upstream.requestCount() == seen; i++) {
                Thread.sleep(10);
            }
            var second = chat(p, "ck-str-000000000000000004", stream);
            assertEquals(429, second.statusCode());
            assertTrue(second.body().contains("\"code\":\"max_streams\""), second.body());
            // A body the proxy does not read as JSON may stream all the same: it counts as a stream.
            var unread = p.send(HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                    .header("Content-Type", "text/plain").header("Authorization", "Bearer ck-str-000000000000000004")
                    .POST(HttpRequest.BodyPublishers.ofString(stream)));
            assertEquals(429, unread.statusCode(), unread.body());
            assertTrue(unread.body().contains("\"code\":\"max_streams\""), unread.body());
            // Upstreams with a lax bool stream these too: they count as streams, not as plain requests.
            for (String value : List.of("1", "\"true\"", "\"yes\"")) {
                var lax = chat(p, "ck-str-000000000000000004", "{\"model\":\"gpt-4o\",\"stream\":" + value + "}");
                assertEquals(429, lax.statusCode(), value + ": " + lax.body());
                assertTrue(lax.body().contains("\"code\":\"max_streams\""), lax.body());
            }
            assertEquals(seen + 1, p.upstream.requestCount(), "only the first stream went upstream");
            assertEquals(200, first.get(30, TimeUnit.SECONDS).statusCode());

            String usage = p.get("/admin/usage").body();
            assertTrue(usage.contains("\"name\":\"tpm-client\",\"requests\":1,\"prompt_tokens\":12,\"completion_tokens\":38"),
                    usage);
            assertFalse(usage.contains("ck-tpm-000000000000000002"), "a client key in full: " + usage);
            assertTrue(p.get("/metrics").body().contains("megallm_client_tokens_total{client=\"tpm-client\",kind=\"prompt\"} 12"));
            List<String> logs = p.logLines();
            assertTrue(logs.stream().anyMatch(l -> l.contains("client file line 6 skipped")), logs.toString());
            for (String line : logs) {
                assertFalse(line.contains("ck-") && line.contains("000000000000000"), "a client key in the log: " + line);
            }
        }
    }

    @Test
    void parallelRequestsOvershootTpmByAboutOneAnswerAndEveryEndGivesItsPlaceBack() throws Exception {
        String answer = "{\"choices\":[],\"usage\":{\"prompt_tokens\":500,\"completion_tokens\":500}}";
        Path file = Files.createTempDirectory("clients").resolve("clients.txt");
        Files.writeString(file, "ck-burst-00000000000000001 name=burst tpm=2500\n");
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("PROXY_API_KEYS", "@" + file))) {
            String key = "ck-burst-00000000000000001";
            String body = "{\"model\":\"gpt-4o\",\"messages\":[]}";
            p.upstream.otherwise(MockUpstream.json(200, answer));
            assertEquals(200, chat(p, key, body).statusCode());

            // The upstream now holds every answer until the test lets it go.
            java.util.concurrent.BlockingQueue<io.netty.channel.ChannelHandlerContext> held =
                    new java.util.concurrent.LinkedBlockingQueue<>();
            p.upstream.otherwise((ctx, req) -> held.add(ctx));
            List<CompletableFuture<java.net.http.HttpResponse<String>>> burst = new java.util.ArrayList<>();
            for (int i = 0; i < 20; i++) {
                burst.add(p.client().sendAsync(HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                        .header("Content-Type", "application/json").header("Authorization", "Bearer " + key)
                        .POST(HttpRequest.BodyPublishers.ofString(body)).build(), BodyHandlers.ofString()));
            }
            // Every request is either refused or held upstream: wait for that, bounded.
            for (int i = 0; i < 2000 && burst.stream().filter(CompletableFuture::isDone).count() + held.size() < 20; i++) {
                Thread.sleep(10);
            }
            // 1000 counted, answers of 1000 expected: two more fit under 2500, not twenty.
            assertEquals(2, held.size(), "requests in flight");
            for (CompletableFuture<java.net.http.HttpResponse<String>> f : burst) {
                if (f.isDone()) {
                    java.net.http.HttpResponse<String> r = f.get();
                    assertEquals(429, r.statusCode(), r.body());
                    assertTrue(r.body().contains("\"code\":\"tpm\""), r.body());
                    // Room comes when the first answer leaves the window: 60 s after it (59 if a
                    // second turned in between), whatever the two in flight bring meanwhile.
                    long retry = Long.parseLong(r.headers().firstValue("retry-after").orElse("0"));
                    assertTrue(retry == 59 || retry == 60, "Retry-After " + retry);
                }
            }

            // One ends with its answer, one with an upstream error and no usage: both give their place back.
            io.netty.channel.ChannelHandlerContext first = held.take();
            first.executor().execute(() -> MockUpstream.json(200, answer).respond(first, null));
            io.netty.channel.ChannelHandlerContext second = held.take();
            second.executor().execute(() -> MockUpstream.json(400, "{\"error\":{\"message\":\"no\"}}")
                    .respond(second, null));
            int ok = 0;
            for (CompletableFuture<java.net.http.HttpResponse<String>> f : burst) {
                ok += f.get(30, TimeUnit.SECONDS).statusCode() == 200 ? 1 : 0;
            }
            assertEquals(1, ok);
            String usage = p.get("/admin/usage").body();
            // (How many requests it shows depends on which step refused each: not asserted.)
            assertTrue(usage.matches("(?s).*\"name\":\"burst\",\"requests\":\\d+,\"prompt_tokens\":1000,\"completion_tokens\":1000.*"),
                    usage);
            // 2000 counted and nothing in flight: one more fits (a leaked place would reserve 1000 more).
            p.upstream.otherwise(MockUpstream.json(200, answer));
            assertEquals(200, chat(p, key, body).statusCode());
        }
    }

    @Test
    void theClientFileIsReloadedWhenItChanges() throws Exception {
        Path dir = Files.createTempDirectory("clients");
        Path file = dir.resolve("clients.txt");
        Files.writeString(file, "ck-one-0000000000000001 name=one\n");
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("PROXY_API_KEYS", "@" + file))) {
            assertEquals(401, chat(p, "ck-two-0000000000000002", "{\"model\":\"m\"}").statusCode());
            Files.writeString(file, "ck-one-0000000000000001 name=one\nck-two-0000000000000002 name=two\n");
            int status = 401;
            for (int i = 0; i < 200 && status == 401; i++) {
                // The watcher applies a change once two polls (500 ms apart) agree: poll, bounded.
                Thread.sleep(50);
                status = chat(p, "ck-two-0000000000000002", "{\"model\":\"m\"}").statusCode();
            }
            assertEquals(200, status);
            assertEquals(200, chat(p, "ck-one-0000000000000001", "{\"model\":\"m\"}").statusCode());
        }
    }

    @Test
    void aClientFileReplacedByJunkIsRefusedWholeAndTheClientsStay() throws Exception {
        Path dir = Files.createTempDirectory("clients");
        Path file = dir.resolve("clients.txt");
        Files.writeString(file, "ck-one-0000000000000001 name=one\n");
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("PROXY_API_KEYS", "@" + file))) {
            // Random bytes, then the wrong text file: before, the first gave junk "clients" and the
            // second none that any real client held.
            byte[] random = new byte[4096];
            new java.util.Random(7).nextBytes(random);
            random[100] = 0;
            Files.write(file, random);
            awaitLog(p, "is not text (it holds NUL bytes)");
            assertEquals(200, chat(p, "ck-one-0000000000000001", "{\"model\":\"m\"}").statusCode());
            Files.writeString(file, "[server]\nlisten = 8080\nworkers = 4\n");
            awaitLog(p, "is not a client list: 2 of its lines are not clients and 1 are");
            assertEquals(200, chat(p, "ck-one-0000000000000001", "{\"model\":\"m\"}").statusCode());
            assertEquals(401, chat(p, "[server]", "{\"model\":\"m\"}").statusCode());
        }
    }

    private static void awaitLog(ProxyUnderTest p, String text) throws InterruptedException {
        for (int i = 0; i < 400; i++) {
            // The watcher applies a change once two polls (500 ms apart) agree: poll, bounded.
            if (p.logLines().stream().anyMatch(l -> l.contains(text))) {
                return;
            }
            Thread.sleep(25);
        }
        fail("no log line with: " + text + " in " + p.logLines());
    }

    @Test
    void aClientAskingForGzipIsStillCountedAndLimited() throws Exception {
        // An upstream that compresses whenever asked to, as APIs behind a CDN do: a gzip answer
        // cannot be read for its usage, so a client that asked for one went uncounted and past
        // its token limits (the OpenAI SDKs ask for gzip by default).
        MockUpstream.Behavior compressing = (ctx, req) -> {
            String accepted = req.headers().get(HttpHeaderNames.ACCEPT_ENCODING, "");
            byte[] body = JSON.getBytes(StandardCharsets.UTF_8);
            boolean gzip = accepted.contains("gzip");
            if (gzip) {
                java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
                try (java.util.zip.GZIPOutputStream z = new java.util.zip.GZIPOutputStream(out)) {
                    z.write(body);
                } catch (java.io.IOException e) {
                    throw new IllegalStateException(e);
                }
                body = out.toByteArray();
            }
            io.netty.handler.codec.http.FullHttpResponse r = new io.netty.handler.codec.http.DefaultFullHttpResponse(
                    HttpVersion.HTTP_1_1, HttpResponseStatus.OK, Unpooled.wrappedBuffer(body));
            r.headers().set(HttpHeaderNames.CONTENT_TYPE, "application/json");
            if (gzip) {
                r.headers().set(HttpHeaderNames.CONTENT_ENCODING, "gzip");
            }
            HttpUtil.setContentLength(r, body.length);
            ctx.writeAndFlush(r);
        };
        Path file = Files.createTempDirectory("clients").resolve("clients.txt");
        Files.writeString(file, "ck-gzip-000000000000000001 name=gzip-client tpm=10\n");
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("PROXY_API_KEYS", "@" + file))) {
            p.upstream.otherwise(compressing);
            for (int i = 0; i < 2; i++) {
                java.net.http.HttpResponse<String> r = p.send(HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                        .header("Content-Type", "application/json").header("Accept-Encoding", "gzip, deflate, br")
                        .header("Authorization", "Bearer ck-gzip-000000000000000001").header("X-Request-Id", "gzip-" + i)
                        .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"m\"}")));
                if (i == 0) {
                    assertEquals(200, r.statusCode(), r.body());
                    assertEquals(JSON, r.body(), "the answer comes as the upstream sent it: uncompressed, since asked so");
                    assertTrue(accessLine(p, "gzip-0").endsWith(" tokens=12/38"), accessLine(p, "gzip-0"));
                } else {
                    assertEquals(429, r.statusCode(), "50 tokens counted against tpm=10: " + r.body());
                }
            }
            assertEquals(1, p.upstream.requestCount());
            assertEquals(List.of("identity"), p.upstream.all().get(0).headers().getAll(HttpHeaderNames.ACCEPT_ENCODING));
        }
    }

    /**
     * Audit (2026-12-07): the Responses API names its counts input_tokens/output_tokens, so its
     * answers went uncounted (tokens=-) and a client with tpm=10 could call /v1/responses without
     * end. Its stream nests the usage in the response.completed event's response.
     */
    @Test
    void theResponsesApisTokensCountAgainstTheLimitsToo() throws Exception {
        String answer = "{\"id\":\"resp_1\",\"object\":\"response\",\"output\":[],"
                + "\"usage\":{\"input_tokens\":30,\"input_tokens_details\":{\"cached_tokens\":2},\"output_tokens\":20}}";
        String stream = "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\","
                + "\"usage\":{\"input_tokens\":7,\"output_tokens\":5}}}\n\n";
        Path file = Files.createTempDirectory("clients").resolve("clients.txt");
        Files.writeString(file, "ck-resp-000000000000000001 name=resp-client tpm=10\n"
                + "ck-resp-000000000000000002 name=resp-stream\n");
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("PROXY_API_KEYS", "@" + file))) {
            MockUpstream.Behavior plain = MockUpstream.json(200, answer);
            MockUpstream.Behavior events = MockUpstream.json(200, stream, Map.of("Content-Type", "text/event-stream"));
            p.upstream.otherwise((ctx, req) -> (req.content().toString(StandardCharsets.UTF_8).contains("\"stream\"")
                    ? events : plain).respond(ctx, req));
            for (int i = 0; i < 2; i++) {
                java.net.http.HttpResponse<String> r = p.send(HttpRequest.newBuilder(p.uri("/v1/responses"))
                        .header("Content-Type", "application/json").header("X-Request-Id", "resp-" + i)
                        .header("Authorization", "Bearer ck-resp-000000000000000001")
                        .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"m\",\"input\":\"hi\"}")));
                if (i == 0) {
                    assertEquals(200, r.statusCode(), r.body());
                    assertTrue(accessLine(p, "resp-0").endsWith(" tokens=30/20"), accessLine(p, "resp-0"));
                } else {
                    assertEquals(429, r.statusCode(), "50 tokens counted against tpm=10: " + r.body());
                    assertTrue(r.body().contains("\"code\":\"tpm\""), r.body());
                }
            }
            java.net.http.HttpResponse<String> streamed = p.send(HttpRequest.newBuilder(p.uri("/v1/responses"))
                    .header("Content-Type", "application/json").header("X-Request-Id", "resp-stream")
                    .header("Authorization", "Bearer ck-resp-000000000000000002")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"m\",\"input\":\"hi\",\"stream\":true}")));
            assertEquals(200, streamed.statusCode(), streamed.body());
            assertEquals(stream, streamed.body());
            assertTrue(accessLine(p, "resp-stream").endsWith(" tokens=7/5"), accessLine(p, "resp-stream"));
        }
    }

    /**
     * Anthropic's Messages API counts its prompt cache's reads and writes apart from its
     * input_tokens: an agent that resends a 48,000-token context every turn showed as its last
     * few tokens, so tpm held it to nothing (Anthropic SDK 1.13 through the proxy, 2026-12-07).
     */
    @Test
    void anthropicsCachedPromptTokensCountAgainstTheLimits() throws Exception {
        String answer = "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"text\","
                + "\"text\":\"hi\"}],\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":0,"
                + "\"cache_read_input_tokens\":48000,\"output_tokens\":9}}";
        Path file = Files.createTempDirectory("clients").resolve("clients.txt");
        Files.writeString(file, "ck-anth-000000000000000001 name=agent tpm=20000\n");
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("PROXY_API_KEYS", "@" + file))) {
            p.upstream.otherwise(MockUpstream.json(200, answer));
            for (int i = 0; i < 2; i++) {
                java.net.http.HttpResponse<String> r = p.send(HttpRequest.newBuilder(p.uri("/v1/messages"))
                        .header("Content-Type", "application/json").header("X-Request-Id", "anth-" + i)
                        .header("x-api-key", "ck-anth-000000000000000001").header("anthropic-version", "2023-06-01")
                        .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"claude\",\"max_tokens\":9,"
                                + "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}")));
                if (i == 0) {
                    assertEquals(200, r.statusCode(), r.body());
                    assertEquals(answer, r.body());
                    assertTrue(accessLine(p, "anth-0").endsWith(" tokens=48012/9"), accessLine(p, "anth-0"));
                } else {
                    assertEquals(429, r.statusCode(), "48,021 tokens counted against tpm=20000: " + r.body());
                    assertTrue(r.body().contains("\"code\":\"tpm\""), r.body());
                }
            }
            String usage = p.get("/admin/usage").body();
            assertTrue(usage.contains("\"prompt_tokens\":48012,\"completion_tokens\":9,\"cached_tokens\":48000"), usage);
        }
    }

    /**
     * A stream cut before its usage counted as nothing: the usage is the event after
     * finish_reason, so a client that hung up there kept every answer off its token limits while
     * the upstream billed them. Now it is charged an estimate (an event a token, and the prompt
     * from the body's length); the usage tables still show only what the upstream said.
     */
    @Test
    void aStreamTheClientLeavesBeforeItsUsageIsChargedAgainstItsLimits() throws Exception {
        Path file = Files.createTempDirectory("clients").resolve("clients.txt");
        Files.writeString(file, "ck-cut-0000000000000000001 name=cutter tpm=30\n");
        String key = "ck-cut-0000000000000000001";
        // 20 events, then the upstream holds the stream open: its usage has not come yet.
        MockUpstream.Behavior eventsThenHold = (ctx, req) -> {
            HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
            head.headers().set(HttpHeaderNames.CONTENT_TYPE, "text/event-stream");
            HttpUtil.setTransferEncodingChunked(head, true);
            ctx.write(head);
            for (int i = 0; i < 20; i++) {
                ctx.writeAndFlush(new DefaultHttpContent(Unpooled.copiedBuffer(MockUpstream.event(i), StandardCharsets.UTF_8)));
            }
        };
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("PROXY_API_KEYS", "@" + file))) {
            p.upstream.otherwise(MockUpstream.sequence(eventsThenHold, sse(STREAM)));
            String body = "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}";
            try (java.net.Socket s = new java.net.Socket("127.0.0.1", p.port())) {
                s.setSoTimeout(30_000);
                s.getOutputStream().write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Request-Id: cut-1\r\n"
                        + "Authorization: Bearer " + key + "\r\nContent-Type: application/json\r\nContent-Length: "
                        + body.length() + "\r\n\r\n" + body).getBytes(StandardCharsets.ISO_8859_1));
                StringBuilder seen = new StringBuilder();
                byte[] buf = new byte[4096];
                while (!seen.toString().contains("tok19")) {
                    int n = s.getInputStream().read(buf);
                    assertTrue(n > 0, "the stream ended early: " + seen);
                    seen.append(new String(buf, 0, n, StandardCharsets.ISO_8859_1));
                }
            }
            assertTrue(accessLine(p, "cut-1").endsWith(" tokens=-"), accessLine(p, "cut-1"));
            // 20 events and the 67-byte body's 16: 36 tokens against tpm=30 (either alone is under it).
            java.net.http.HttpResponse<String> next = chat(p, key, body);
            assertEquals(429, next.statusCode(), "the cut stream was charged: " + next.body());
            assertTrue(next.body().contains("\"code\":\"tpm\""), next.body());
            String usage = p.get("/admin/usage").body();
            assertTrue(usage.contains("\"name\":\"cutter\",\"requests\":1,\"prompt_tokens\":0,\"completion_tokens\":0"),
                    "an estimate is not usage: " + usage);
        }
    }

    /**
     * Anthropic's stream gives its usage twice: the prompt at message_start (with output_tokens 1),
     * the output at message_delta, the last event. A client that hung up before message_delta was
     * charged its prompt and one token, however many events it had read: the same escape from the
     * token limits as a chat stream left before its usage, which is charged an event a token.
     */
    @Test
    void anAnthropicStreamLeftBeforeItsOutputUsageIsChargedItsEvents() throws Exception {
        Path file = Files.createTempDirectory("clients").resolve("clients.txt");
        String key = "ck-anth-cut-00000000000001";
        Files.writeString(file, key + " name=anth-cutter tpm=20\n");
        MockUpstream.Behavior eventsThenHold = (ctx, req) -> {
            HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
            head.headers().set(HttpHeaderNames.CONTENT_TYPE, "text/event-stream");
            HttpUtil.setTransferEncodingChunked(head, true);
            ctx.write(head);
            ctx.writeAndFlush(new DefaultHttpContent(Unpooled.copiedBuffer("event: message_start\ndata: {\"type\":"
                    + "\"message_start\",\"message\":{\"id\":\"msg_1\",\"role\":\"assistant\",\"content\":[],"
                    + "\"usage\":{\"input_tokens\":2,\"output_tokens\":1}}}\n\n", StandardCharsets.UTF_8)));
            for (int i = 0; i < 25; i++) {
                ctx.writeAndFlush(new DefaultHttpContent(Unpooled.copiedBuffer("event: content_block_delta\ndata: "
                        + "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
                        + "\"text\":\"tok" + i + "\"}}\n\n", StandardCharsets.UTF_8)));
            }
        };
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("PROXY_API_KEYS", "@" + file))) {
            p.upstream.otherwise(eventsThenHold);
            String body = "{\"model\":\"claude\",\"max_tokens\":64,\"stream\":true}";
            try (java.net.Socket s = new java.net.Socket("127.0.0.1", p.port())) {
                s.setSoTimeout(30_000);
                s.getOutputStream().write(("POST /v1/messages HTTP/1.1\r\nHost: x\r\nX-Request-Id: anth-cut-1\r\n"
                        + "x-api-key: " + key + "\r\nContent-Type: application/json\r\nContent-Length: "
                        + body.length() + "\r\n\r\n" + body).getBytes(StandardCharsets.ISO_8859_1));
                StringBuilder seen = new StringBuilder();
                byte[] buf = new byte[4096];
                while (!seen.toString().contains("tok24")) {
                    int n = s.getInputStream().read(buf);
                    assertTrue(n > 0, "the stream ended early: " + seen);
                    seen.append(new String(buf, 0, n, StandardCharsets.ISO_8859_1));
                }
            }
            assertTrue(accessLine(p, "anth-cut-1").endsWith(" tokens=2/1"), accessLine(p, "anth-cut-1"));
            // 26 events read: at least 26 tokens against tpm=20, not the 3 the first event said.
            p.upstream.otherwise(MockUpstream.json(200, JSON));
            java.net.http.HttpResponse<String> next = p.send(HttpRequest.newBuilder(p.uri("/v1/messages"))
                    .header("Content-Type", "application/json").header("x-api-key", key)
                    .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"claude\",\"max_tokens\":64}")));
            assertEquals(429, next.statusCode(), "the cut stream was charged its events: " + next.body());
            assertTrue(next.body().contains("\"code\":\"tpm\""), next.body());
        }
    }

    @Test
    void aTokenLimitedClientsStreamMustAskForItsUsage() throws Exception {
        // A Chat Completions stream carries its usage only when asked (stream_options.include_usage,
        // which the proxy never adds): unasked, its tokens never count, and a client with tpm or
        // daily_tokens streamed past its limits. LangChain asks only when talking to OpenAI itself.
        Path file = Files.createTempDirectory("clients").resolve("clients.txt");
        Files.writeString(file, "ck-lim-000000000000000001 name=limited daily_tokens=1000\n"
                + "ck-free-00000000000000002 name=free\n");
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("PROXY_API_KEYS", "@" + file))) {
            p.upstream.otherwise(sse(STREAM));
            String limited = "ck-lim-000000000000000001";
            java.net.http.HttpResponse<String> unasked = chat(p, limited, "{\"model\":\"m\",\"stream\":true}");
            assertEquals(400, unasked.statusCode(), unasked.body());
            assertTrue(unasked.body().contains("\"code\":\"include_usage_required\"")
                    && unasked.body().contains("\"type\":\"invalid_request_error\""), unasked.body());
            java.net.http.HttpResponse<String> falseAsked = chat(p, limited,
                    "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":false}}");
            assertEquals(400, falseAsked.statusCode(), falseAsked.body());
            java.net.http.HttpResponse<String> labelledText = p.send(HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                    .header("Content-Type", "text/plain").header("Authorization", "Bearer " + limited)
                    .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"m\",\"stream\":true}")));
            assertEquals(400, labelledText.statusCode(), "a JSON body labelled text/plain: " + labelledText.body());
            // The re-audit: the last stream_options wins upstream, so a later null undid an earlier ask.
            java.net.http.HttpResponse<String> undone = chat(p, limited, "{\"model\":\"m\",\"stream\":true,"
                    + "\"stream_options\":{\"include_usage\":true},\"stream_options\":null}");
            assertEquals(400, undone.statusCode(), undone.body());
            // A text/plain body our parser refuses and an upstream may take (NaN): not shown to ask.
            java.net.http.HttpResponse<String> lenient = p.send(HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                    .header("Content-Type", "text/plain").header("Authorization", "Bearer " + limited)
                    .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"m\",\"stream\":true,\"temperature\":NaN,"
                            + "\"stream_options\":{\"include_usage\":true}}")));
            assertEquals(400, lenient.statusCode(), lenient.body());
            assertEquals(0, p.upstream.requestCount(), "nothing refused went upstream");

            java.net.http.HttpResponse<String> asked = p.send(HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                    .header("Content-Type", "application/json").header("Authorization", "Bearer " + limited)
                    .header("X-Request-Id", "asked-usage")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"m\",\"stream\":true,"
                            + "\"stream_options\":{\"other\":[1,{}],\"include_usage\":true}}")));
            assertEquals(200, asked.statusCode(), asked.body());
            assertTrue(accessLine(p, "asked-usage").endsWith(" tokens=21/9"), accessLine(p, "asked-usage"));
            assertEquals(200, chat(p, limited, "{\"model\":\"m\"}").statusCode(), "a plain request needs nothing");
            assertEquals(200, chat(p, "ck-free-00000000000000002", "{\"model\":\"m\",\"stream\":true}").statusCode(),
                    "a client without token limits streams as it likes");
        }
    }

    @Test
    void keysAndClientsShownTheSameAreOneSeriesOnMetrics() throws Exception {
        // Prometheus' text format wants each series once: two clients with one name and two keys
        // with one mask were two identical series, which a scraper refuses or reads wrong.
        Path file = Files.createTempDirectory("clients").resolve("clients.txt");
        Files.writeString(file, "ck-one-000000000000000001 name=team\nck-two-000000000000000002 name=team\n");
        List<String> keys = List.of("sk-mega-SAMEPREFIX-one-00000-wxyz", "sk-mega-SAMEPREFIX-two-00000-wxyz");
        assertEquals(ApiKey.mask(keys.get(0)), ApiKey.mask(keys.get(1)));
        try (ProxyUnderTest p = ProxyUnderTest.start(keys, Map.of("PROXY_API_KEYS", "@" + file))) {
            p.upstream.otherwise(MockUpstream.json(200, JSON));
            assertEquals(200, chat(p, "ck-one-000000000000000001", "{\"model\":\"m\"}").statusCode());
            assertEquals(200, chat(p, "ck-two-000000000000000002", "{\"model\":\"m\"}").statusCode());
            String metrics = p.get("/metrics").body();
            List<String> series = metrics.lines().filter(l -> !l.startsWith("#"))
                    .map(l -> l.substring(0, l.lastIndexOf(' '))).toList();
            assertEquals(series.size(), new java.util.HashSet<>(series).size(), "a series twice in " + metrics);
            assertTrue(metrics.contains("megallm_client_tokens_total{client=\"team\",kind=\"prompt\"} 24\n"), metrics);
            String mask = ApiKey.mask(keys.get(0));
            assertTrue(metrics.contains("megallm_key_requests_total{key=\"" + mask + "\"} 2\n"), metrics);
            assertTrue(metrics.contains("megallm_key_state{key=\"" + mask + "\",state=\"available\"} 2\n"), metrics);
        }
    }

    /**
     * White-box review (2026-12-07): the include_usage rule matched the path as written, but
     * upstreams route what they decode and normalise: uvicorn decodes %63 to c, Express ignores
     * case and a trailing slash, nginx merges slashes, servlet containers drop ;params. Any of
     * these spellings streamed uncounted past a token limit.
     */
    @Test
    void aChatStreamSpelledOtherwiseMustAskForItsUsageToo() throws Exception {
        Path file = Files.createTempDirectory("clients").resolve("clients.txt");
        Files.writeString(file, "ck-spell-00000000000000001 name=speller tpm=1000\n");
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("PROXY_API_KEYS", "@" + file))) {
            // Routes as lenient servers do: decoded, case ignored, empty segments and ;params dropped.
            MockUpstream.Behavior noUsage = sse(List.of("data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n",
                    "data: [DONE]\n\n"));
            p.upstream.otherwise((ctx, req) -> {
                String path = new io.netty.handler.codec.http.QueryStringDecoder(req.uri()).path();
                String routed = java.util.Arrays.stream(path.split("/")).map(s -> s.replaceAll(";.*", ""))
                        .filter(s -> !s.isEmpty()).map(s -> s.toLowerCase(java.util.Locale.ROOT))
                        .collect(java.util.stream.Collectors.joining("/", "/", ""));
                (routed.equals("/v1/chat/completions") || routed.equals("/v1/completions") ? noUsage
                        : MockUpstream.json(404, "{\"error\":{\"message\":\"no route\"}}")).respond(ctx, req);
            });
            for (String path : List.of("/v1/chat/%63ompletions", "/v1/chat/completions/", "/v1//chat/completions",
                    "/v1/Chat/Completions", "/v1/chat/completions;x", "/v1/%63ompletions")) {
                java.net.http.HttpResponse<String> r = p.send(HttpRequest.newBuilder(p.uri(path))
                        .header("Content-Type", "application/json").header("Authorization", "Bearer ck-spell-00000000000000001")
                        .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"m\",\"stream\":true}")));
                assertEquals(400, r.statusCode(), path + ": " + r.body());
                assertTrue(r.body().contains("\"code\":\"include_usage_required\""), path + ": " + r.body());
            }
            assertEquals(0, p.upstream.requestCount(), "no uncounted stream went upstream");
        }
    }

    /**
     * White-box review (2026-12-07): Go's encoding/json (and ASP.NET's web defaults) match keys
     * case-insensitively, the last match winning, so such an upstream reads {"MODEL":…} as the
     * model and {"Stream":true} as a stream. The checks read only the exact names: a model outside
     * the allow-list, or an uncounted stream, went through.
     */
    @Test
    void keysSpelledInAnotherCaseDoNotSlipPastTheLimits() throws Exception {
        Path file = Files.createTempDirectory("clients").resolve("clients.txt");
        Files.writeString(file, "ck-case-00000000000000001 name=picky models=gpt-4o-mini\n"
                + "ck-case-00000000000000002 name=counted tpm=1000\n");
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("PROXY_API_KEYS", "@" + file))) {
            p.upstream.otherwise(sse(List.of("data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n",
                    "data: [DONE]\n\n")));
            java.net.http.HttpResponse<String> model = chat(p, "ck-case-00000000000000001",
                    "{\"model\":\"gpt-4o-mini\",\"MODEL\":\"gpt-4o\"}");
            assertEquals(403, model.statusCode(), model.body());
            assertTrue(model.body().contains("\"code\":\"model_not_allowed\""), model.body());
            for (String body : List.of("{\"model\":\"m\",\"Stream\":true}",
                    "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                            + "\"Stream_Options\":{\"include_usage\":false}}",
                    "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true,\"INCLUDE_USAGE\":false}}")) {
                java.net.http.HttpResponse<String> r = chat(p, "ck-case-00000000000000002", body);
                assertEquals(400, r.statusCode(), body + ": " + r.body());
                assertTrue(r.body().contains("\"code\":\"include_usage_required\""), body + ": " + r.body());
            }
            assertEquals(0, p.upstream.requestCount(), "nothing refused went upstream");
            assertEquals(200, chat(p, "ck-case-00000000000000001", "{\"model\":\"gpt-4o-mini\",\"Model\":\"gpt-4o-mini\"}")
                    .statusCode(), "the same model twice is that model");
        }
    }

    /** White-box review (2026-12-07): new-api's usage carries both names of each count, the other API's as 0. */
    @Test
    void aGatewaysZeroedSecondNamesDoNotEraseTheCounts() throws Exception {
        String answer = "{\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":38,"
                + "\"input_tokens\":0,\"output_tokens\":0,\"total_tokens\":50}}";
        Path file = Files.createTempDirectory("clients").resolve("clients.txt");
        Files.writeString(file, "ck-newapi-0000000000000001 name=gw-client tpm=10\n");
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("PROXY_API_KEYS", "@" + file))) {
            p.upstream.otherwise(MockUpstream.json(200, answer));
            assertEquals(200, chat(p, "ck-newapi-0000000000000001", "{\"model\":\"m\"}").statusCode());
            java.net.http.HttpResponse<String> second = chat(p, "ck-newapi-0000000000000001", "{\"model\":\"m\"}");
            assertEquals(429, second.statusCode(), "50 tokens counted against tpm=10: " + second.body());
            assertEquals(1, p.upstream.requestCount());
        }
    }
}
