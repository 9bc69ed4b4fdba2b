package io.megallm.proxy.server.logs;

import org.slf4j.Logger;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.LocalDate;
import java.time.format.DateTimeParseException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Removes rolled log files older than {@value #KEEP_DAYS} days (contract §10) that logback leaves
 * behind. Logback's {@code cleanHistoryOnStart} and its clean-up at each daily roll look back only
 * 32 days: the files of a proxy stopped for longer stay for ever. Run once at start, which is where
 * such files can be (in a running proxy logback's own clean-up at each roll keeps up).
 *
 * <p>Only names of the rolling pattern in logback.xml are touched, {@code app.<yyyy-MM-dd>.<n>.log}
 * and {@code access.<yyyy-MM-dd>.<n>.log}, and only regular files: never the live {@code app.log}
 * or {@code access.log}, nor anything else an operator keeps in LOG_DIR. A file's age is the date in
 * its name (the day its lines were written, what logback itself goes by), not its modification
 * time, which a copy or a backup tool can reset. Kept: that date and the {@value #KEEP_DAYS} days
 * before today, as logback's {@code maxHistory} keeps them; "today" is the system time zone's, the
 * one logback names the files in.
 */
public final class RolledLogs {

    /** logback.xml's {@code maxHistory}. */
    public static final int KEEP_DAYS = 7;

    /** logback.xml's {@code fileNamePattern}s: {@code ${LOG_DIR}/app.%d{yyyy-MM-dd}.%i.log}, and access. */
    private static final Pattern ROLLED = Pattern.compile("(?:app|access)\\.(\\d{4}-\\d{2}-\\d{2})\\.\\d{1,9}\\.log");

    private RolledLogs() {
    }

    /** The day a rolled file's lines were written, or null when the name is not a rolled file's. */
    static LocalDate dayOf(String fileName) {
        Matcher m = ROLLED.matcher(fileName);
        if (!m.matches()) {
            return null;
        }
        try {
            return LocalDate.parse(m.group(1));
        } catch (DateTimeParseException e) {
            return null;
        }
    }

    /**
     * Deletes the rolled files in {@code logDir} dated before {@code today} minus {@value #KEEP_DAYS}
     * days; says what it did on {@code log} (nothing when there was nothing to do). Never throws: a
     * file that cannot be deleted is one warning, and the rest go on.
     *
     * @return how many files were deleted
     */
    public static int removeOld(Path logDir, LocalDate today, Logger log) {
        LocalDate oldestKept = today.minusDays(KEEP_DAYS);
        int removed = 0;
        int failed = 0;
        String firstFailure = null;
        try (DirectoryStream<Path> files = Files.newDirectoryStream(logDir)) {
            for (Path file : files) {
                LocalDate day = dayOf(file.getFileName().toString());
                if (day == null || !day.isBefore(oldestKept)
                        || !Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS)) {
                    continue;
                }
                try {
                    Files.delete(file);
                    removed++;
                } catch (NoSuchFileException gone) {
                    // Removed by logback or someone else meanwhile: what was wanted.
                } catch (IOException e) {
                    failed++;
                    if (firstFailure == null) {
                        firstFailure = file.getFileName() + ": " + e.getClass().getSimpleName();
                    }
                }
            }
        } catch (IOException e) {
            // No LOG_DIR (it could not be created: said on stderr at start): nothing to clean.
            return 0;
        }
        if (removed > 0) {
            log.info("removed {} rolled log file(s) from {} dated before {} (older than {} days)", removed, logDir,
                    oldestKept, KEEP_DAYS);
        }
        if (failed > 0) {
            log.warn("{} rolled log file(s) in {} older than {} days could not be removed (first: {})", failed, logDir,
                    KEEP_DAYS, firstFailure);
        }
        return removed;
    }
}
