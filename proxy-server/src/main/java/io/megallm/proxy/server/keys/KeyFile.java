package io.megallm.proxy.server.keys;

import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.key.KeyListParser;
import io.megallm.proxy.key.KeyPool;
import io.megallm.proxy.key.ParsedKeys;
import io.megallm.proxy.key.ReloadResult;
import io.megallm.proxy.server.config.OperatorFile;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The key pool file on disk. A missing file, a directory in its place (what Docker makes of a
 * bind mount whose source did not exist), an unreadable file or one that is not a key list (binary,
 * mostly other text, more than {@value #MAX_KEYS} keys) never stops the proxy: it logs one clear
 * line and serves with what it has.
 */
public final class KeyFile {

    private static final Logger log = LoggerFactory.getLogger(KeyFile.class);
    /**
     * Far more than any account pool; each key costs ~0.8 KB of heap and a few series on
     * /metrics, so a file of millions of lines (a log pasted by mistake) is refused whole.
     */
    static final int MAX_KEYS = 100_000;
    /**
     * MAX_KEYS lines of ~160 bytes: a larger file is not read at all. It is read whole, and held
     * about three times over while it is parsed (bytes, text, lines): 64 MiB took a 128 MB heap.
     */
    static final long MAX_FILE_BYTES = 16L * 1024 * 1024;
    /** Skipped lines named one by one; past this many, one line says how many more. */
    static final int MAX_LINE_WARNINGS = 20;

    /** What a reload did: {@code result} when the file was read, else {@code problem}. */
    public record Outcome(ReloadResult result, String problem) {
    }

    private final Path path;
    private final KeyPool pool;

    public KeyFile(Path path, KeyPool pool) {
        this.path = path;
        this.pool = pool;
    }

    public Path path() {
        return path;
    }

    /** Loads the pool at start; never fails, whatever the file's state. */
    public ReloadResult loadAtStart() {
        Outcome outcome = read();
        if (outcome.problem() != null) {
            log.error("starting with 0 keys: {}; add keys to the file, then POST /admin/reload-keys", outcome.problem());
            return pool.reload(List.of());
        }
        ReloadResult r = outcome.result();
        if (r.total() == 0) {
            log.error("starting with 0 keys: the keys file {} has no keys; add one key a line, then POST /admin/reload-keys",
                    path);
        } else {
            log.info("loaded {} keys from {}", r.total(), path);
        }
        return r;
    }

    /**
     * Re-reads the file. When it cannot be read the pool is left as it was, so a file caught
     * in the middle of a deploy does not empty a working pool.
     */
    public Outcome reload() {
        Outcome outcome = read();
        if (outcome.problem() != null) {
            log.error("keys not reloaded, the pool is unchanged: {}", outcome.problem());
            return outcome;
        }
        ReloadResult r = outcome.result();
        log.info("keys reloaded from {}: total={} added={} removed={} kept={}", path, r.total(), r.added(),
                r.removed(), r.kept());
        if (r.total() == 0) {
            log.error("the keys file {} has no keys: every request will get 503 until keys are added", path);
        }
        return outcome;
    }

    /**
     * A reload because the file changed on disk. Unlike an operator's explicit reload, a file
     * that turned empty keeps the pool: editors truncate before they write, and a watcher that
     * applied that moment would throw away every key's state.
     */
    public Outcome reloadChanged() {
        Outcome peek = read(false);
        if (peek.problem() != null) {
            log.error("keys file changed but was not reloaded, the pool is unchanged: {}", peek.problem());
            return peek;
        }
        if (peek.result() == null) {
            log.warn("keys file {} changed and has no keys now; the pool is unchanged (POST /admin/reload-keys applies an empty file)",
                    path);
            return new Outcome(null, "the keys file has no keys");
        }
        ReloadResult r = peek.result();
        log.info("keys file changed, reloaded: total={} added={} removed={} kept={}", r.total(), r.added(),
                r.removed(), r.kept());
        return peek;
    }

    /**
     * Keys are shown by their masked form (contract §4), and two keys can share one (the same first
     * 8 and last 4 characters): their rows in /admin/keys and their series in /metrics then look the
     * same. Both are used; the operator is told which form is ambiguous (it is no secret).
     */
    private void warnSameMasks(List<String> keys) {
        Map<String, Integer> byMask = new HashMap<>();
        for (String key : keys) {
            byMask.merge(ApiKey.mask(key), 1, Integer::sum);
        }
        // One line whatever the count: in a pool of thousands of random keys many masks repeat.
        List<String> shared = byMask.entrySet().stream().filter(e -> e.getValue() > 1).map(Map.Entry::getKey)
                .sorted().toList();
        if (!shared.isEmpty()) {
            log.warn("keys file {}: {} masked form(s) stand for more than one key ({}{}): /admin/keys and /metrics"
                    + " cannot tell those keys apart", path, shared.size(), String.join(", ", shared.subList(0,
                    Math.min(5, shared.size()))), shared.size() > 5 ? ", …" : "");
        }
    }

    private Outcome read() {
        return read(true);
    }

    /** With {@code applyEmpty} false, a file without keys leaves the pool alone and the result is null. */
    private Outcome read(boolean applyEmpty) {
        String text;
        try {
            text = OperatorFile.readList(path, MAX_FILE_BYTES, "keys file");
        } catch (IOException e) {
            return new Outcome(null, e.getMessage());
        }
        ParsedKeys parsed = KeyListParser.parse(text.lines()::iterator, MAX_KEYS);
        if (parsed.keys().size() > MAX_KEYS) {
            // The parser stopped at the first key past the cap: how many more there are is not known.
            return new Outcome(null, "the keys file " + path + " has more than the " + MAX_KEYS + " keys one pool holds");
        }
        int skipped = parsed.malformedLines().size();
        if (skipped > parsed.keys().size()) {
            // A file of keys with a typo or two is a key file; one where most lines are not keys
            // (an encrypted or templated file, the wrong file) would replace a working pool with
            // fragments of text that every upstream refuses.
            return new Outcome(null, "the keys file " + path + " is not a key list: " + skipped
                    + " of its lines are not keys and " + parsed.keys().size() + " are");
        }
        int named = 0;
        for (int line : parsed.malformedLines()) {
            if (++named > MAX_LINE_WARNINGS) {
                log.warn("keys file {}: {} more lines skipped (white space or control characters)", path,
                        skipped - MAX_LINE_WARNINGS);
                break;
            }
            log.warn("keys file {} line {} skipped: a key must not contain white space or control characters",
                    path, line);
        }
        warnSameMasks(parsed.keys());
        if (parsed.keys().isEmpty() && !applyEmpty) {
            return new Outcome(null, null);
        }
        return new Outcome(pool.reload(parsed.keys()), null);
    }
}
