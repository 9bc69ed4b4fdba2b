package io.megallm.proxy.key;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class KeyListParserTest {

    @Test
    void trimsSurroundingWhiteSpace() {
        ParsedKeys parsed = KeyListParser.parse(List.of("  sk-one  ", "\tsk-two\t", "sk-three\r"));

        assertEquals(List.of("sk-one", "sk-two", "sk-three"), parsed.keys());
        assertEquals(List.of(), parsed.malformedLines());
    }

    @Test
    void ignoresBlankLinesAndComments() {
        ParsedKeys parsed = KeyListParser.parse(List.of(
                "", "   ", "# a comment", "   # indented comment", "sk-one", "\t", "#sk-commented-out", "sk-two"));

        assertEquals(List.of("sk-one", "sk-two"), parsed.keys());
        assertEquals(List.of(), parsed.malformedLines());
    }

    @Test
    void duplicatesCountOnceAndFileOrderIsKept() {
        ParsedKeys parsed = KeyListParser.parse(List.of("sk-c", "sk-a", "sk-c", " sk-b ", "sk-a", "sk-b"));

        assertEquals(List.of("sk-c", "sk-a", "sk-b"), parsed.keys());
        assertEquals(List.of(), parsed.malformedLines());
    }

    @Test
    void lineWithInnerWhiteSpaceIsSkippedAndItsOneBasedNumberReported() {
        ParsedKeys parsed = KeyListParser.parse(List.of("sk-good", "sk-bad key", "sk-other", "sk-tab\tkey"));

        assertEquals(List.of("sk-good", "sk-other"), parsed.keys());
        assertEquals(List.of(2, 4), parsed.malformedLines());
    }

    @Test
    void lineWithControlCharacterIsSkippedAndItsNumberReported() {
        ParsedKeys parsed = KeyListParser.parse(List.of(
                "# header", "sk-ctl\u0001key", "sk-good", "sk-del\u007fkey", "sk-nul\u0000"));

        assertEquals(List.of("sk-good"), parsed.keys());
        assertEquals(List.of(2, 4, 5), parsed.malformedLines());
    }

    @Test
    void malformedLinesAreReportedByNumberNeverByContent() {
        String secret = "sk-secret with space";
        ParsedKeys parsed = KeyListParser.parse(List.of(secret));

        assertEquals(List.of(1), parsed.malformedLines());
        assertTrue(parsed.keys().isEmpty());
        assertFalse(parsed.toString().contains("secret with"), parsed.toString());
    }

    @Test
    void byteOrderMarkOnFirstLineIsDropped() {
        ParsedKeys parsed = KeyListParser.parse(List.of("\uFEFFsk-first", "sk-second"));

        assertEquals(List.of("sk-first", "sk-second"), parsed.keys());
        assertEquals(List.of(), parsed.malformedLines());
    }

    @Test
    void byteOrderMarkBeforeCommentOrBlankFirstLine() {
        assertEquals(List.of("sk-a"), KeyListParser.parse(List.of("\uFEFF# keys", "sk-a")).keys());
        assertEquals(List.of("sk-a"), KeyListParser.parse(List.of("\uFEFF", "sk-a")).keys());
        assertEquals(List.of("sk-a"), KeyListParser.parse(List.of("\uFEFF  sk-a  ")).keys());
    }

    @Test
    void byteOrderMarkOnLaterLineIsNotSilentlyPartOfAKey() {
        ParsedKeys parsed = KeyListParser.parse(List.of("sk-a", "\uFEFFsk-b"));

        assertEquals(List.of("sk-a"), parsed.keys());
        assertEquals(List.of(2), parsed.malformedLines());
    }

    @Test
    void readingStopsAtTheFirstKeyPastTheCap() {
        // A million lines made one at a time: how many the parser pulls shows where it stopped.
        int[] pulled = {0};
        Iterable<String> lines = () -> new java.util.Iterator<>() {
            @Override
            public boolean hasNext() {
                return pulled[0] < 1_000_000;
            }

            @Override
            public String next() {
                int i = pulled[0]++;
                return i % 2 == 0 ? "# comment " + i : "sk-many-" + i;
            }
        };
        ParsedKeys parsed = KeyListParser.parse(lines, 1000);

        assertEquals(1001, parsed.keys().size(), "one past the cap, for the caller to refuse");
        assertEquals(2002, pulled[0], "no line read after that key");
        assertEquals(List.of("sk-a", "sk-b"), KeyListParser.parse(List.of("sk-a", "sk-b"), 2).keys());
    }

    @Test
    void emptyInputGivesNoKeys() {
        ParsedKeys parsed = KeyListParser.parse(List.of());

        assertTrue(parsed.keys().isEmpty());
        assertTrue(parsed.malformedLines().isEmpty());
    }
}
