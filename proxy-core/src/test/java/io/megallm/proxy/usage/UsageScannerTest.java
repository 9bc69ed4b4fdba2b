package io.megallm.proxy.usage;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class UsageScannerTest {

    private static final String JSON_ANSWER = "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
            + "\"message\":{\"role\":\"assistant\",\"content\":\"the \\\"usage\\\": {\\\"prompt_tokens\\\": 999} of it\"}}],"
            + "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":38,\"total_tokens\":50,"
            + "\"prompt_tokens_details\":{\"cached_tokens\":4,\"audio_tokens\":0},"
            + "\"completion_tokens_details\":{\"reasoning_tokens\":7}},\"system_fingerprint\":\"fp\"}";

    private static final String STREAM = "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"usage\"}}],\"usage\":null}\n\n"
            + "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"{\\\"usage\\\":{\\\"prompt_tokens\\\":1}}\"}}],\"usage\":null}\n\n"
            + "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":21,\"completion_tokens\":9,\"total_tokens\":30}}\n\n"
            + "data: [DONE]\n\n";

    /** An embeddings answer: arrays of numbers four deep, the usage after them, no completion tokens. */
    private static final String EMBEDDINGS = "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,"
            + "\"embedding\":[0.0023064255,-0.009327292,0.015797347,-0.0077780345,1e-7,12]},{\"object\":\"embedding\","
            + "\"index\":1,\"embedding\":[-0.004,0.5,{\"usage\":{\"prompt_tokens\":99}},[1,[2,[3]]]]}],"
            + "\"model\":\"text-embedding-3-small\",\"usage\":{\"prompt_tokens\":8,\"total_tokens\":8}}";

    private static UsageScanner scanWhole(String text) {
        UsageScanner s = new UsageScanner();
        ByteBuf b = Unpooled.copiedBuffer(text, StandardCharsets.UTF_8);
        s.scan(b);
        assertEquals(0, b.readerIndex(), "the scanner must not consume the bytes");
        b.release();
        return s;
    }

    @Test
    void readsTheTopLevelUsageOfAJsonAnswerAndNothingInsideStrings() {
        UsageScanner s = scanWhole(JSON_ANSWER);
        assertTrue(s.found());
        assertEquals(12, s.promptTokens());
        assertEquals(38, s.completionTokens());
        assertEquals(4, s.cachedTokens());
    }

    @Test
    void readsTheUsageOfAStreamsLastEvent() {
        UsageScanner s = scanWhole(STREAM);
        assertTrue(s.found());
        assertEquals(21, s.promptTokens());
        assertEquals(9, s.completionTokens());
        assertEquals(0, s.cachedTokens());
    }

    @Test
    void aStreamWithoutIncludeUsageHasNone() {
        assertFalse(scanWhole("data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"usage\":null}\n\ndata: [DONE]\n\n").found());
        assertFalse(scanWhole("{\"id\":\"x\"}").found());
        assertFalse(scanWhole("").found());
    }

    @Test
    void countsTheDocumentsItHasSeenOneAnEventOfAStream() {
        // What a stream cut before its usage is charged by: its events, not the objects inside them.
        assertEquals(2, scanWhole("data: {\"choices\":[{\"delta\":{\"content\":\"{hi}\"}}]}\n\n"
                + "data: {\"usage\":null,\"x\":[{},{}]}\n\ndata: [DONE]\n\n").documents());
        assertEquals(1, scanWhole("{\"id\":\"x\",\"choices\":[{\"message\":{}}]}").documents());
        assertEquals(0, scanWhole(": keep-alive\n\n").documents());
    }

    @Test
    void aUsageNestedDeeperIsNotTheAnswersUsage() {
        assertFalse(scanWhole("{\"choices\":[{\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":6}}],"
                + "\"meta\":{\"usage\":{\"prompt_tokens\":7}}}").found());
    }

    @Test
    void readsTheUsageAfterAnEmbeddingsAnswersArraysAndNotOneInsideThem() {
        UsageScanner s = scanWhole(EMBEDDINGS);
        assertTrue(s.found());
        assertEquals(8, s.promptTokens());
        assertEquals(0, s.completionTokens());
    }

    // ---- other APIs' usage (audit, 2026-12-07): a client with token limits could leave them
    // behind by calling /v1/responses, whose usage was never counted (tokens=-) ----------------

    private static final String RESPONSES_ANSWER = "{\"id\":\"resp_1\",\"object\":\"response\",\"output\":[{\"type\":\"message\","
            + "\"content\":[{\"type\":\"output_text\",\"text\":\"hi \\\"usage\\\"\"}]}],"
            + "\"usage\":{\"input_tokens\":36,\"input_tokens_details\":{\"cached_tokens\":5},\"output_tokens\":87,"
            + "\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":123}}";

    private static final String RESPONSES_STREAM = "event: response.created\ndata: {\"type\":\"response.created\","
            + "\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"usage\":null}}\n\n"
            + "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"{\\\"usage\\\":1}\"}\n\n"
            + "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\","
            + "\"output\":[{\"type\":\"message\",\"content\":[{\"text\":\"hi\"}]}],"
            + "\"usage\":{\"input_tokens\":40,\"input_tokens_details\":{\"cached_tokens\":8},\"output_tokens\":11,"
            + "\"total_tokens\":51}}}\n\n";

    private static final String ANTHROPIC_STREAM = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{"
            + "\"id\":\"msg_1\",\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n"
            + "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"text\":\"Hi\"}}\n\n"
            + "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},"
            + "\"usage\":{\"output_tokens\":15}}\n\n"
            + "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    /**
     * Anthropic with prompt caching: its input_tokens are only what follows the cache point; the
     * cache's reads and writes come apart (and again, cumulative, in the last event since 2025).
     */
    private static final String ANTHROPIC_CACHED_STREAM = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{"
            + "\"id\":\"msg_2\",\"content\":[],\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":300,"
            + "\"cache_read_input_tokens\":48000,\"cache_creation\":{\"ephemeral_5m_input_tokens\":300,"
            + "\"ephemeral_1h_input_tokens\":0},\"output_tokens\":1,\"service_tier\":\"standard\"}}}\n\n"
            + "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"text\":"
            + "\"\\\"cache_read_input_tokens\\\":9\"}}\n\n"
            + "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},"
            + "\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":300,\"cache_read_input_tokens\":48000,"
            + "\"output_tokens\":15}}\n\n"
            + "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    /** Counted as OpenAI counts them: the prompt with its cached part, and that part as cached. */
    @Test
    void anthropicsCacheReadsAndWritesArePartOfThePrompt() {
        UsageScanner s = scanWhole(ANTHROPIC_CACHED_STREAM);
        assertTrue(s.found());
        assertEquals(25 + 300 + 48000, s.promptTokens());
        assertEquals(15, s.completionTokens());
        assertEquals(48000, s.cachedTokens());
        UsageScanner answer = scanWhole("{\"id\":\"msg_3\",\"type\":\"message\",\"content\":[{\"type\":\"text\","
                + "\"text\":\"hi\"}],\"usage\":{\"input_tokens\":7,\"cache_read_input_tokens\":1000,\"output_tokens\":3}}");
        assertEquals(1007, answer.promptTokens());
        assertEquals(3, answer.completionTokens());
        assertEquals(1000, answer.cachedTokens());
        // Without the cache names nothing changes.
        assertEquals(25, scanWhole(ANTHROPIC_STREAM).promptTokens());
        assertEquals(0, scanWhole(ANTHROPIC_STREAM).cachedTokens());
    }

    @Test
    void readsTheResponsesApisUsageByItsOwnNames() {
        UsageScanner s = scanWhole(RESPONSES_ANSWER);
        assertTrue(s.found());
        assertEquals(36, s.promptTokens());
        assertEquals(87, s.completionTokens());
        assertEquals(5, s.cachedTokens());
    }

    @Test
    void readsTheUsageInsideTheResponsesApisCompletedEvent() {
        UsageScanner s = scanWhole(RESPONSES_STREAM);
        assertTrue(s.found());
        assertEquals(40, s.promptTokens());
        assertEquals(11, s.completionTokens());
        assertEquals(8, s.cachedTokens());
    }

    /** Anthropic's stream says the input at its start and only the output at its end: field by field. */
    @Test
    void aLaterUsageKeepsTheCountsItDoesNotSay() {
        UsageScanner s = scanWhole(ANTHROPIC_STREAM);
        assertTrue(s.found());
        assertEquals(25, s.promptTokens());
        assertEquals(15, s.completionTokens());
    }

    @Test
    void aWrapperBelowTheTopLevelIsNotOne() {
        assertFalse(scanWhole("{\"choices\":[{\"message\":{\"usage\":{\"prompt_tokens\":5,\"input_tokens\":6}}}],"
                + "\"data\":{\"response\":{\"usage\":{\"output_tokens\":7}}}}").found());
        assertFalse(scanWhole("{\"response\":{\"meta\":{\"usage\":{\"input_tokens\":7}}}}").found());
        assertFalse(scanWhole("{\"response\":[{\"usage\":{\"input_tokens\":7}}]}").found());
    }

    /** Every split of the new streams into two reads gives what one read gives. */
    @Test
    void theOtherApisStreamsGiveTheSameCountsSplitAnywhere() {
        for (String stream : new String[] {RESPONSES_STREAM, ANTHROPIC_STREAM, RESPONSES_ANSWER, ANTHROPIC_CACHED_STREAM}) {
            UsageScanner whole = scanWhole(stream);
            byte[] bytes = stream.getBytes(StandardCharsets.UTF_8);
            for (int cut = 0; cut <= bytes.length; cut++) {
                UsageScanner s = new UsageScanner();
                ByteBuf a = Unpooled.wrappedBuffer(bytes, 0, cut);
                ByteBuf b = Unpooled.wrappedBuffer(bytes, cut, bytes.length - cut);
                s.scan(a);
                s.scan(b);
                a.release();
                b.release();
                assertEquals(whole.found(), s.found(), "cut at " + cut);
                assertEquals(whole.promptTokens(), s.promptTokens(), "cut at " + cut);
                assertEquals(whole.completionTokens(), s.completionTokens(), "cut at " + cut);
                assertEquals(whole.cachedTokens(), s.cachedTokens(), "cut at " + cut);
            }
        }
    }

    /** The eight-bytes-a-step search against the plain definition, for every byte value at every place of a word. */
    @Test
    void theStructuralByteSearchFindsQuotesBracesAndBracketsAndNothingElse() {
        for (int v = 0; v < 256; v++) {
            boolean structural = v == '"' || v == '{' || v == '}' || v == '[' || v == ']';
            for (int at = 0; at < 19; at++) {
                byte[] bytes = new byte[19];
                java.util.Arrays.fill(bytes, (byte) '7');
                bytes[at] = (byte) v;
                assertEquals(structural ? at : -1, UsageScanner.nextStructural(bytes, 0, bytes.length), "byte " + v + " at " + at);
                assertEquals(structural && at >= 3 ? at : -1, UsageScanner.nextStructural(bytes, 3, bytes.length),
                        "byte " + v + " at " + at + " from 3");
            }
        }
    }

    /** The same for the end of a string's plain bytes: the first quote or backslash, else the end. */
    @Test
    void theStringEndSearchFindsQuotesAndBackslashesAndNothingElse() {
        for (int v = 0; v < 256; v++) {
            boolean stop = v == '"' || v == '\\';
            for (int at = 0; at < 27; at++) {
                byte[] bytes = new byte[27];
                java.util.Arrays.fill(bytes, (byte) 'u');
                bytes[at] = (byte) v;
                assertEquals(stop ? at : bytes.length, UsageScanner.stringStop(bytes, 0, bytes.length), "byte " + v + " at " + at);
                assertEquals(stop && at >= 5 && at < 20 ? at : 20, UsageScanner.stringStop(bytes, 5, 20),
                        "byte " + v + " at " + at + " from 5 to 20");
            }
        }
    }

    /**
     * A direct buffer (what the socket fills) is read in per-thread windows: an answer whose
     * usage, its names and its numbers stand across a window's edge, at every offset around it,
     * gives the counts that the byte machine reads.
     */
    @Test
    void aDirectBufferLargerThanTheWindowIsReadAcrossItsEdges() {
        String tail = "\",\"usage\":{\"prompt_tokens\":12345,\"completion_tokens\":67,"
                + "\"prompt_tokens_details\":{\"cached_tokens\":4}}}";
        for (int pad = UsageScanner.WINDOW - 110; pad < UsageScanner.WINDOW + 10; pad++) {
            String text = "{\"id\":\"" + "x".repeat(pad) + tail;
            byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
            ByteBuf direct = Unpooled.directBuffer(bytes.length).writeBytes(bytes);
            UsageScanner s = new UsageScanner();
            s.scan(direct);
            assertEquals(0, direct.readerIndex(), "the scanner must not consume the bytes");
            direct.release();
            assertTrue(s.found(), "pad " + pad);
            assertEquals(12345, s.promptTokens(), "pad " + pad);
            assertEquals(67, s.completionTokens(), "pad " + pad);
            assertEquals(4, s.cachedTokens(), "pad " + pad);
        }
        // Three windows of an embeddings answer, then its usage.
        StringBuilder numbers = new StringBuilder("{\"data\":[{\"embedding\":[");
        while (numbers.length() < 3 * UsageScanner.WINDOW) {
            numbers.append("0.0023064255,-0.009327292,");
        }
        String text = numbers.append("1]}],\"usage\":{\"prompt_tokens\":8,\"total_tokens\":8}}").toString();
        UsageScanner s = new UsageScanner();
        ByteBuf direct = Unpooled.directBuffer().writeBytes(text.getBytes(StandardCharsets.UTF_8));
        s.scan(direct);
        direct.release();
        assertTrue(s.found());
        assertEquals(8, s.promptTokens());
    }

    @Test
    void everySplitPositionGivesTheSameCounts() {
        for (String text : new String[] {JSON_ANSWER, STREAM}) {
            byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
            UsageScanner whole = scanWhole(text);
            for (int cut = 0; cut <= bytes.length; cut++) {
                for (int cut2 = cut; cut2 <= bytes.length; cut2 += Math.max(1, bytes.length / 7)) {
                    UsageScanner s = new UsageScanner();
                    ByteBuf a = Unpooled.wrappedBuffer(bytes, 0, cut);
                    ByteBuf b = Unpooled.wrappedBuffer(bytes, cut, cut2 - cut);
                    ByteBuf c = Unpooled.wrappedBuffer(bytes, cut2, bytes.length - cut2);
                    s.scan(a);
                    s.scan(b);
                    s.scan(c);
                    assertEquals(whole.found(), s.found(), "cut at " + cut + "/" + cut2);
                    assertEquals(whole.promptTokens(), s.promptTokens(), "cut at " + cut + "/" + cut2);
                    assertEquals(whole.completionTokens(), s.completionTokens(), "cut at " + cut + "/" + cut2);
                    assertEquals(whole.cachedTokens(), s.cachedTokens(), "cut at " + cut + "/" + cut2);
                }
            }
        }
    }

    @Test
    void byteByByteToo() {
        UsageScanner s = new UsageScanner();
        for (byte b : JSON_ANSWER.getBytes(StandardCharsets.UTF_8)) {
            s.scan(Unpooled.wrappedBuffer(new byte[] {b}));
        }
        assertEquals(12, s.promptTokens());
        assertEquals(4, s.cachedTokens());
    }

    @Test
    void absurdNumbersAreCappedAndGarbageIsHarmless() {
        UsageScanner s = scanWhole("{\"usage\":{\"prompt_tokens\":99999999999999999999999,\"completion_tokens\":1}}");
        assertTrue(s.found());
        assertEquals(1_000_000_000_000L, s.promptTokens());
        UsageScanner g = scanWhole("}}]]\"\\\"{{{[[[:::,,,\u0000\u00ff\"usage\":{\"prompt_tokens\":3");
        assertFalse(g.found());
    }

    /**
     * White-box review (2026-12-07): new-api (QuantumNous/new-api, a common OpenAI-compatible
     * gateway) writes one Go struct for every API's usage, both names of each count and no
     * omitempty: a chat answer ends its usage with "input_tokens":0,"output_tokens":0, and the
     * later zeros replaced the counts. A count given under both names is the larger.
     */
    @Test
    void aCountGivenUnderBothNamesIsNotZeroedByTheOther() {
        UsageScanner chat = scanWhole("{\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":38,"
                + "\"input_tokens\":0,\"output_tokens\":0,\"total_tokens\":50,\"prompt_tokens_details\":{\"cached_tokens\":4}}}");
        assertEquals(12, chat.promptTokens());
        assertEquals(38, chat.completionTokens());
        assertEquals(4, chat.cachedTokens());
        UsageScanner responses = scanWhole("{\"usage\":{\"prompt_tokens\":0,\"completion_tokens\":0,"
                + "\"input_tokens\":30,\"output_tokens\":20,\"total_tokens\":50}}");
        assertEquals(30, responses.promptTokens());
        assertEquals(20, responses.completionTokens());
    }

    /**
     * White-box review (2026-12-07): a count in exponent form is a valid JSON number (a gateway
     * that keeps counts as doubles writes 1.2345678E7 in Java) and was read as its first digits:
     * 12,345,678 tokens counted as 1.
     */
    @Test
    void numbersWithAFractionOrAnExponentCountAsTheirValue() {
        String[][] cases = {
            {"1.2345678E7", "12345678"}, {"1e3", "1000"}, {"25E+1", "250"}, {"0.5e2", "50"},
            {"12.0", "12"}, {"12.9", "12"}, {"1200e-2", "12"}, {"5e-1", "0"}, {"1e999", "1000000000000"},
            {"123456789012345678901234.5e-20", "1234"},
        };
        for (String[] c : cases) {
            String json = "{\"usage\":{\"prompt_tokens\":" + c[0] + ",\"completion_tokens\":" + c[0] + "}}";
            UsageScanner whole = scanWhole(json);
            assertEquals(Long.parseLong(c[1]), whole.promptTokens(), c[0]);
            assertEquals(Long.parseLong(c[1]), whole.completionTokens(), c[0]);
            byte[] bytes = json.getBytes(StandardCharsets.UTF_8);
            for (int cut = 0; cut <= bytes.length; cut++) {
                UsageScanner s = new UsageScanner();
                s.scan(Unpooled.wrappedBuffer(bytes, 0, cut));
                s.scan(Unpooled.wrappedBuffer(bytes, cut, bytes.length - cut));
                assertEquals(whole.promptTokens(), s.promptTokens(), c[0] + " cut at " + cut);
            }
        }
    }

    @Test
    void throughTheUpstreamsChunkLinesWhenTheyArePassedOn() {
        // The usage key split by a chunk boundary: chunk lines land inside the JSON string.
        String wire = "28\r\ndata: {\"choices\":[],\"usage\":{\"prompt_tok\r\n"
                + "33;ext=1\r\nens\":21,\"completion_tokens\":9,\"total_tokens\":30}}\n\n\r\n"
                + "e\r\ndata: [DONE]\n\n\r\n0\r\nX-Trailer: {\"usage\":{\"prompt_tokens\":1}}\r\n\r\n";
        UsageScanner plain = scanWhole(wire);
        assertFalse(plain.found() && plain.promptTokens() == 21, "a plain scanner cannot see through chunk lines");
        for (int cut = 0; cut <= wire.length(); cut++) {
            UsageScanner s = new UsageScanner(true);
            byte[] bytes = wire.getBytes(StandardCharsets.US_ASCII);
            s.scan(Unpooled.wrappedBuffer(bytes, 0, cut));
            s.scan(Unpooled.wrappedBuffer(bytes, cut, bytes.length - cut));
            assertTrue(s.found(), "cut at " + cut);
            assertEquals(21, s.promptTokens(), "cut at " + cut);
            assertEquals(9, s.completionTokens(), "cut at " + cut);
        }
    }

    /**
     * {@code scan} crosses strings in bulk; {@code process} is the byte-at-a-time machine it must
     * agree with. Random documents from JSON's structural bytes, escapes, our key names inside and
     * outside strings, and chunk framing, cut at random places: same counts either way.
     */
    @Test
    void bulkScanAgreesWithTheByteMachineOnRandomInput() {
        String[] parts = {"{", "}", "[", "]", ":", ",", " ", "\"", "\\", "\\\"", "usage", "prompt_tokens",
                "completion_tokens", "prompt_tokens_details", "cached_tokens", "\"usage\":{", "\"prompt_tokens\":",
                "\"completion_tokens\":", "\"prompt_tokens_details\":{\"cached_tokens\":", "12", "7", "x",
                "data: ", "\n\n", "a long string value of forty bytes or so..", "\u00e9",
                "[0.25,-1.5e-3,7", "[[[[1,2],3]", "]]", ",{\"a\":[", "\"usage\":[", "[\"usage\",{\"prompt_tokens\":3}]",
                "0.0023064255,-0.009327292,", "\u0002", "}}}", "\"cache_read_input_tokens\":",
                "\"cache_creation_input_tokens\":", "\"input_tokens\":"};
        Random random = new Random(16);
        int withUsage = 0;
        for (int doc = 0; doc < 6000; doc++) {
            // Mostly real answers with a few random edits, so that many still carry a usage; some pure noise.
            String[] bases = {JSON_ANSWER, STREAM, EMBEDDINGS, ANTHROPIC_CACHED_STREAM};
            StringBuilder t = new StringBuilder(random.nextInt(4) == 0 ? "" : bases[random.nextInt(bases.length)]);
            int edits = t.length() == 0 ? 1 + random.nextInt(60) : random.nextInt(4);
            for (int k = 0; k < edits; k++) {
                int at = random.nextInt(t.length() + 1);
                if (t.length() > 0 && random.nextInt(3) == 0) {
                    t.delete(at, Math.min(t.length(), at + 1 + random.nextInt(8)));
                } else {
                    t.insert(at, parts[random.nextInt(parts.length)]);
                }
            }
            byte[] json = t.toString().getBytes(StandardCharsets.UTF_8);
            boolean chunked = random.nextBoolean();
            byte[] bytes = chunked ? chunk(json, random) : json;
            UsageScanner reference = new UsageScanner(chunked);
            for (byte b : bytes) {
                reference.process(b);
            }
            UsageScanner bulk = new UsageScanner(chunked);
            int at = 0;
            while (at < bytes.length) {
                int len = Math.min(bytes.length - at, 1 + random.nextInt(bytes.length));
                // Heap buffers are read in place, direct ones through the window: both ways.
                ByteBuf part = random.nextBoolean() ? Unpooled.wrappedBuffer(bytes, at, len)
                        : Unpooled.directBuffer(len).writeBytes(bytes, at, len);
                bulk.scan(part);
                part.release();
                at += len;
            }
            String what = (chunked ? "chunked " : "") + t;
            assertEquals(reference.found(), bulk.found(), what);
            assertEquals(reference.promptTokens(), bulk.promptTokens(), what);
            assertEquals(reference.completionTokens(), bulk.completionTokens(), what);
            assertEquals(reference.cachedTokens(), bulk.cachedTokens(), what);
            withUsage += reference.found() ? 1 : 0;
        }
        assertTrue(withUsage > 100, "the random documents must find a usage often enough to test it: " + withUsage);
    }

    private static byte[] chunk(byte[] data, Random random) {
        StringBuilder wire = new StringBuilder();
        int at = 0;
        while (at < data.length) {
            int len = Math.min(data.length - at, 1 + random.nextInt(20));
            wire.append(Integer.toHexString(len)).append(random.nextInt(4) == 0 ? ";ext=1" : "").append("\r\n")
                    .append(new String(data, at, len, StandardCharsets.ISO_8859_1)).append("\r\n");
            at += len;
        }
        wire.append("0\r\n\r\n");
        return wire.toString().getBytes(StandardCharsets.ISO_8859_1);
    }

    /**
     * An OpenAI-format answer from a gateway in front of Claude (LiteLLM's shape) carries the cache
     * counts next to prompt_tokens, which already includes them: they are not added again.
     */
    @Test
    void cacheCountsBesideOpenAisPromptTokensAreNotAddedTwice() {
        UsageScanner s = scanWhole("{\"id\":\"c\",\"object\":\"chat.completion\",\"choices\":[],\"usage\":"
                + "{\"prompt_tokens\":1000,\"completion_tokens\":5,\"total_tokens\":1005,"
                + "\"prompt_tokens_details\":{\"cached_tokens\":800},"
                + "\"cache_creation_input_tokens\":150,\"cache_read_input_tokens\":800}}");
        assertEquals(1000, s.promptTokens());
        assertEquals(5, s.completionTokens());
        assertEquals(800, s.cachedTokens());
    }
}
