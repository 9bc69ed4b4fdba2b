package io.megallm.proxy.server.clients;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Contract §13: the client file and each limit, with explicit times (no clock, no sleeps). */
class ClientLimitsTest {

    private static final long T0 = 1_764_979_200L; // 2025-12-06T00:00:00Z, a UTC midnight

    private static Client client(String line) {
        ClientFile.Parsed p = ClientFile.parse(line);
        assertEquals(List.of(), p.warnings());
        return new Client(p.clients().get(0));
    }

    @Test
    void aKeyThatIsNotVisibleAsciiIsSkippedAsInTheKeyFile() {
        // A byte-order mark at a line's end or an accented letter in a key was loaded without a
        // word, and that client could never authenticate.
        ClientFile.Parsed p = ClientFile.parse("ck-good-000000000000000001\nck-bom-0000000000000002\uFEFF name=b\n"
                + "ck-acc\u00e9nt-00000000000003\n");
        assertEquals(1, p.clients().size(), p.warnings().toString());
        assertEquals(List.of("client file line 2 skipped: the key has a control character or one that is not ASCII",
                "client file line 3 skipped: the key has a control character or one that is not ASCII"), p.warnings());
    }

    @Test
    void theFileGivesKeysNamesAndLimitsAndSkipsBadLinesByNumberOnly() {
        ClientFile.Parsed p = ClientFile.parse("""
                # team keys
                ck-alice-0000000000001 name=alice rpm=60 tpm=10000 daily_tokens=500000 max_streams=2 models=gpt-4o,gpt-4o-mini

                ck-bob-000000000000002
                ck-carol-0000000000003 rpm=ten
                ck-dave-00000000000004 colour=blue
                ck-alice-0000000000001 name=again
                name=nokey
                ck-erin-00000000000005 name=erin # a comment after the fields
                """);
        assertEquals(3, p.clients().size());
        ClientSpec alice = p.clients().get(0);
        assertEquals("alice", alice.label());
        assertEquals(60, alice.rpm());
        assertEquals(10000, alice.tpm());
        assertEquals(500000, alice.dailyTokens());
        assertEquals(2, alice.maxStreams());
        assertEquals(Set.of("gpt-4o", "gpt-4o-mini"), alice.models());
        ClientSpec bob = p.clients().get(1);
        assertEquals("ck-bob-0…0002", bob.label());
        assertEquals(0, bob.rpm());
        assertNull(bob.models());
        assertEquals("erin", p.clients().get(2).label());
        assertEquals(4, p.warnings().size(), p.warnings().toString());
        assertTrue(p.warnings().get(0).startsWith("client file line 5 skipped"), p.warnings().get(0));
        assertTrue(p.warnings().get(1).startsWith("client file line 6 skipped"), p.warnings().get(1));
        assertTrue(p.warnings().get(2).startsWith("client file line 7 skipped"), p.warnings().get(2));
        assertTrue(p.warnings().get(3).startsWith("client file line 8 skipped"), p.warnings().get(3));
        for (String w : p.warnings()) {
            assertFalse(w.contains("ck-"), "a warning shows a key: " + w);
            assertFalse(w.contains("blue") || w.contains("nokey"), "a warning shows line content: " + w);
        }
    }

    @Test
    void aFileWithLoneCarriageReturnsIsReadLineByLineAndAFileOfNoClientStillRequiresAKey() throws Exception {
        ClientFile.Parsed p = ClientFile.parse("ck-mac-00000000000000000001 name=one rpm=5\rck-mac-00000000000000000002 name=two\r");
        assertEquals(2, p.clients().size(), p.warnings().toString());

        java.nio.file.Path file = java.nio.file.Files.createTempFile("clients", ".txt");
        try {
            java.nio.file.Files.writeString(file, "ck-bad key with spaces\n# and a comment in Latin-1: \u00e9\n");
            // Only a line that is not a client: refused whole, like the wrong file.
            assertThrows(java.io.IOException.class, () -> ClientRegistry.fromFile(file));
            java.nio.file.Files.writeString(file, "# no client yet\n");
            ClientRegistry none = ClientRegistry.fromFile(file);
            assertTrue(none.clients().isEmpty());
            assertTrue(none.required(), "a client file that left no client lets no one in, not everyone");
            java.nio.file.Files.write(file, "ck-latin-000000000000001\n# cl\u00e9s\n".getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
            assertEquals(1, ClientRegistry.fromFile(file).clients().size(), "a comment in another encoding costs no client");
        } finally {
            java.nio.file.Files.delete(file);
        }
    }

    @Test
    void aLeadingByteOrderMarkIsNoPartOfTheFirstKey() throws Exception {
        ClientFile.Parsed p = ClientFile.parse("\uFEFFck-bom-000000000000001 name=first\nck-bom-000000000000002\n");
        assertEquals(List.of(), p.warnings());
        assertTrue(p.clients().get(0).key().equals("ck-bom-000000000000001"), "the first key kept the mark");
        assertEquals("ck-bom-0…0002", p.clients().get(1).label());
        assertTrue(ClientFile.parse("\uFEFF  ck-only-00000000000001  ").clients().get(0).key()
                .equals("ck-only-00000000000001"), "white space after the mark is trimmed");
        assertEquals(1, ClientFile.parse("\uFEFF# clients\nck-only-00000000000001\n").clients().size());

        java.nio.file.Path file = java.nio.file.Files.createTempFile("clients", ".txt");
        try {
            // As Notepad saves UTF-8: EF BB BF first.
            java.nio.file.Files.write(file, "\uFEFFck-bom-000000000000001 name=first\n"
                    .getBytes(java.nio.charset.StandardCharsets.UTF_8));
            ClientRegistry registry = ClientRegistry.fromFile(file);
            assertNotNull(registry.lookup("ck-bom-000000000000001"), "the client presenting its key is found");
        } finally {
            java.nio.file.Files.delete(file);
        }
    }

    @Test
    void parsingStopsAtTheFirstClientPastTheCapAndWarningsStayFew() throws Exception {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < ClientFile.MAX_CLIENTS + 5_000; i++) {
            b.append("ck-many-").append(i).append(" name=c").append(i).append('\n');
            if (i % 4 == 0) {
                b.append("not a client line\n");
            }
        }
        ClientFile.Parsed p = ClientFile.parse(b.toString());
        assertEquals(ClientFile.MAX_CLIENTS + 1, p.clients().size(), "no client kept after the first past the cap");
        assertEquals(ClientFile.MAX_WARNINGS + 1, p.warnings().size());
        assertEquals("client file: " + (p.skipped() - ClientFile.MAX_WARNINGS) + " more lines skipped or ambiguous",
                p.warnings().get(ClientFile.MAX_WARNINGS));

        java.nio.file.Path file = java.nio.file.Files.createTempFile("clients", ".txt");
        try {
            java.nio.file.Files.writeString(file, b);
            java.io.IOException e = assertThrows(java.io.IOException.class, () -> ClientFile.read(file));
            assertTrue(e.getMessage().endsWith(" has more than the 100000 clients it may hold"), e.getMessage());
        } finally {
            java.nio.file.Files.delete(file);
        }
    }

    @Test
    void twoClientsShownTheSameAreBothKeptAndNamedInAWarning() {
        ClientFile.Parsed p = ClientFile.parse("ck-one-000000000000001 name=team-a\nck-two-000000000000002 name=team-a\n"
                + "ck1\nck2\n");
        assertEquals(4, p.clients().size(), "each keeps its key and limits");
        assertEquals(List.of(
                "client file line 2 is shown as the client of line 1 is (the same name, or no name and the same masked key):"
                        + " give it a name= of its own",
                "client file line 4 is shown as the client of line 3 is (the same name, or no name and the same masked key):"
                        + " give it a name= of its own"), p.warnings());
    }

    @Test
    void rpmRefusesTheRequestOverTheLimitUntilTheOldestLeavesTheWindow() {
        Client c = client("ck-x-000000000000001 rpm=3");
        assertNull(c.admit(T0, "m", false));
        assertNull(c.admit(T0 + 10, "m", false));
        assertNull(c.admit(T0 + 20, "m", false));
        Client.Refusal r = c.admit(T0 + 30, "m", false);
        assertNotNull(r);
        assertEquals(429, r.status());
        assertEquals("rpm", r.code());
        assertEquals(30, r.retryAfterSeconds(), "the first request leaves the window at T0+60");
        assertNotNull(c.admit(T0 + 59, "m", false));
        assertNull(c.admit(T0 + 60, "m", false), "a refused request is not counted");
        assertEquals(4, c.requests());
    }

    @Test
    void tpmCountsAnswersTokensAndLetsOneInFlightAnswerOvershoot() {
        Client c = client("ck-x-000000000000001 tpm=100");
        assertNull(c.admit(T0, "m", false));
        assertNull(c.admit(T0, "m", false), "nothing counted yet: both start");
        c.addTokens(T0 + 1, 60, 30, 0);
        c.ended(false);
        c.addTokens(T0 + 2, 60, 30, 0);
        c.ended(false);
        Client.Refusal r = c.admit(T0 + 3, "m", false);
        assertEquals("tpm", r.code());
        assertEquals(58, r.retryAfterSeconds(), "the T0+1 answer leaves the window at T0+61");
        assertNull(c.admit(T0 + 62, "m", false));
    }

    /** One answer of {@code tokens} (half prompt, half completion) ends at {@code second}. */
    private static void answer(Client c, long second, long tokens) {
        c.addTokens(second, tokens / 2, tokens - tokens / 2, 0);
        c.ended(false);
    }

    private static int admitted(Client c, long second, int tries) {
        int n = 0;
        for (int i = 0; i < tries; i++) {
            if (c.admit(second, "m", false) == null) {
                n++;
            }
        }
        return n;
    }

    @Test
    void parallelRequestsOvershootTpmByAboutOneAnswerNotOneEach() {
        Client c = client("ck-x-000000000000001 tpm=10000");
        assertNull(c.admit(T0, "m", false));
        answer(c, T0, 1000);
        // 1000 counted, answers of about 1000 expected: room for 9 more in flight, not 20.
        assertEquals(9, admitted(c, T0 + 1, 20));
        assertEquals(9, c.inFlight(), "a refused request holds no place");
        Client.Refusal r = c.admit(T0 + 1, "m", false);
        assertEquals("tpm", r.code());
        assertEquals(59, r.retryAfterSeconds(), "the 1000 counted at T0 leave at T0+60, making room for the 9");
        assertNotNull(c.admitRequest(T0 + 1), "the head step already sees the answers in flight");
        for (int i = 0; i < 9; i++) {
            answer(c, T0 + 2, 1000);
        }
        assertEquals(0, c.inFlight());
        assertEquals(10_000, c.promptTokens() + c.completionTokens(), "the limit, not 20,000");
        assertEquals(30, c.admit(T0 + 30, "m", false).retryAfterSeconds(), "the T0 answer leaves at T0+60");
        assertNull(c.admit(T0 + 62, "m", false), "the window has passed");
    }

    @Test
    void sharedWindowsCountThisInstancesAnswersInFlightToo() {
        Client c = client("ck-x-000000000000001 tpm=10000");
        c.share(io.megallm.proxy.server.shared.SharedCounters.local());
        assertNull(c.admit(T0, "m", false));
        answer(c, T0, 1000);
        assertEquals(9, admitted(c, T0 + 1, 20));
        Client.Refusal r = c.admit(T0 + 1, "m", false);
        assertEquals("tpm", r.code());
        assertEquals(59, r.retryAfterSeconds(), "the shared minute's own Retry-After: until the minute turns");
    }

    @Test
    void dailyTokensCountTheAnswersInFlightToo() {
        Client c = client("ck-x-000000000000001 daily_tokens=5000");
        assertNull(c.admit(T0, "m", false));
        answer(c, T0, 1000);
        assertEquals(4, admitted(c, T0 + 1, 20));
        Client.Refusal r = c.admit(T0 + 1, "m", false);
        assertEquals("daily_tokens", r.code());
        assertEquals(86_400 - 1, r.retryAfterSeconds());
    }

    @Test
    void aClientFarFromItsLimitIsNotHeldToOneRequest() {
        Client c = client("ck-x-000000000000001 tpm=1000000");
        assertNull(c.admit(T0, "m", false));
        answer(c, T0, 1000);
        assertEquals(200, admitted(c, T0 + 1, 200));
    }

    @Test
    void theExpectedAnswerRisesAtOnceAndFallsSlowly() {
        Client c = client("ck-x-000000000000001 tpm=100000");
        assertNull(c.admit(T0, "m", false));
        answer(c, T0, 40_000);
        assertEquals(2, admitted(c, T0, 10), "40,000 counted, two of 40,000 more fit");
        answer(c, T0, 100);
        answer(c, T0, 100);
        // Expected now 40,000 - 39,900/8, then again: about 30,600 an answer; 40,200 counted.
        assertEquals(2, admitted(c, T0, 10));
        for (int i = 0; i < 2; i++) {
            answer(c, T0, 100);
        }
        for (int i = 0; i < 30; i++) {
            assertNull(c.admit(T0, "m", false));
            answer(c, T0, 100);
        }
        assertEquals(10, admitted(c, T0, 10), "after many small answers, a huge one no longer holds it back");
    }

    @Test
    void aRequestRefusedLaterByItsStreamsOrModelHoldsNoPlaceInFlight() {
        Client c = client("ck-x-000000000000001 tpm=10000 max_streams=1 models=m");
        assertNull(c.admit(T0, "m", true));
        c.addTokens(T0, 500, 500, 0);
        c.ended(true);
        assertNull(c.admit(T0, "m", true));
        assertEquals("max_streams", c.admit(T0, "m", true).code());
        assertEquals("model_not_allowed", c.admit(T0, "other", false).code());
        assertEquals(1, c.inFlight());
        assertEquals(8, admitted(c, T0, 20), "1000 counted, 1 + 8 in flight");
    }

    @Test
    void racingRequestsNeverTakeMoreRoomThanTheLimitLeaves() throws Exception {
        Client c = client("ck-x-000000000000001 tpm=10000");
        assertNull(c.admit(T0, "m", false));
        answer(c, T0, 1000);
        ExecutorService pool = Executors.newFixedThreadPool(8);
        AtomicInteger admitted = new AtomicInteger();
        CountDownLatch go = new CountDownLatch(1);
        for (int t = 0; t < 8; t++) {
            pool.submit(() -> {
                go.await();
                for (int i = 0; i < 50; i++) {
                    if (c.admitBody(T0 + 1, "m", false) == null) {
                        admitted.incrementAndGet();
                    }
                }
                return null;
            });
        }
        go.countDown();
        pool.shutdown();
        assertTrue(pool.awaitTermination(30, TimeUnit.SECONDS));
        assertEquals(9, admitted.get());
        assertEquals(9, c.inFlight());
    }

    /**
     * Found by ClientLimitsModelTest: a refusal names one limit, and its Retry-After must be the
     * time the request would wait for all of them. The head step answered tpm with the seconds
     * until its tokens left the window although rpm still refused for most of a minute (and
     * daily_tokens a second before midnight although tpm refused for a minute): a client that
     * obeyed came back early and was refused again.
     */
    @Test
    void retryAfterIsTheLongestWaitOfTheLimitsThatRefuse() {
        Client c = client("ck-x-000000000000001 rpm=1 tpm=1000");
        assertNull(c.admitRequest(T0));
        assertNull(c.admitBody(T0, "m", false));
        answer(c, T0 + 5, 600);
        assertNull(c.admit(T0 + 60, "m", false), "the minute has passed: 600 counted, none in flight");
        Client.Refusal r = c.admitRequest(T0 + 61);
        assertNotNull(r);
        // 600 counted and 600 expected in flight against tpm=1000: room at T0+65; rpm: at T0+120.
        assertEquals(59, r.retryAfterSeconds(), r.code());
        assertEquals("rpm", c.admitRequest(T0 + 65).code(), "tpm has room now, rpm does not");

        Client d = client("ck-x-000000000000002 tpm=100 daily_tokens=1000");
        assertNull(d.admit(T0 + 86_399 - 30, "m", false));
        answer(d, T0 + 86_399, 1500);
        Client.Refusal late = d.admitRequest(T0 + 86_399);
        assertEquals(60, late.retryAfterSeconds(), late.code() + ": midnight is in 1 s, the 1500 tokens leave tpm in 60");
        assertEquals("tpm", d.admitRequest(T0 + 86_400).code());
    }

    /**
     * Two event loops charge answers at midnight: one read its clock at 23:59:59, the other at
     * 00:00:00, and the first's charge lands second. It took the day counter back to the old
     * day, wiping what the new day had counted: the new day's check then saw 0.
     */
    @Test
    void aChargeStampedBeforeMidnightThatLandsAfterOneOfTheNewDayLeavesTheNewDaysCount() {
        Client c = client("ck-x-000000000000001 daily_tokens=1000");
        c.addTokens(T0 + 86_400, 1000, 200, 0);
        c.addTokens(T0 + 86_399, 5, 5, 0);
        assertEquals(1200, c.tokensToday(T0 + 86_400));
        assertEquals("daily_tokens", c.admit(T0 + 86_401, "m", false).code());
    }

    @Test
    void dailyTokensLastUntilUtcMidnight() {
        Client c = client("ck-x-000000000000001 daily_tokens=1000");
        c.addTokens(T0 + 3600, 900, 200, 50);
        Client.Refusal r = c.admit(T0 + 7200, "m", false);
        assertEquals("daily_tokens", r.code());
        assertEquals(86_400 - 7200, r.retryAfterSeconds());
        assertNull(c.admit(T0 + 86_400, "m", false), "a new UTC day");
        assertEquals(900, c.promptTokens());
        assertEquals(200, c.completionTokens());
        assertEquals(50, c.cachedTokens());
    }

    @Test
    void maxStreamsCountsOpenStreamsOnly() {
        Client c = client("ck-x-000000000000001 max_streams=1");
        assertNull(c.admit(T0, "m", true));
        assertEquals("max_streams", c.admit(T0, "m", true).code());
        assertNull(c.admit(T0, "m", false), "a non-streaming request is not a stream");
        c.ended(true);
        assertNull(c.admit(T0, "m", true));
        assertEquals(1, c.openStreams());
    }

    @Test
    void modelsOutsideTheListAre403() {
        Client c = client("ck-x-000000000000001 models=gpt-4o-mini");
        assertNull(c.admit(T0, "gpt-4o-mini", false));
        Client.Refusal r = c.admit(T0, "gpt-4o", false);
        assertEquals(403, r.status());
        assertEquals("model_not_allowed", r.code());
        assertEquals("model_not_allowed", c.admit(T0, null, false).code());
    }

    @Test
    void racingRequestsNeverExceedRpm() throws Exception {
        Client c = client("ck-x-000000000000001 rpm=100");
        ExecutorService pool = Executors.newFixedThreadPool(8);
        AtomicInteger admitted = new AtomicInteger();
        CountDownLatch go = new CountDownLatch(1);
        for (int t = 0; t < 8; t++) {
            pool.submit(() -> {
                go.await();
                for (int i = 0; i < 100; i++) {
                    if (c.admit(T0, "m", false) == null) {
                        admitted.incrementAndGet();
                    }
                }
                return null;
            });
        }
        go.countDown();
        pool.shutdown();
        assertTrue(pool.awaitTermination(30, TimeUnit.SECONDS));
        assertTrue(admitted.get() <= 100, "admitted " + admitted.get());
        assertTrue(admitted.get() >= 90, "admitted " + admitted.get());
    }
}
