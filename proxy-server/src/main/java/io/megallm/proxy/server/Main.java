package io.megallm.proxy.server;

import io.megallm.proxy.server.config.ConfigError;
import io.megallm.proxy.server.config.ConfigLoader;
import io.megallm.proxy.server.config.Settings;
import io.megallm.proxy.server.logs.LogWriteWatch;
import io.megallm.proxy.server.logs.RolledLogs;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import sun.misc.Signal;

import java.nio.file.Path;
import java.time.LocalDate;
import java.util.concurrent.CountDownLatch;

/** {@code java -jar megallm-proxy.jar}: configure, start, serve until SIGTERM/SIGINT, drain, exit 0. */
public final class Main {

    private Main() {
    }

    private static final String LEAK_DETECTION = "io.netty.leakDetection.level";

    public static void main(String[] args) {
        CountDownLatch stop = new CountDownLatch(1);
        // Handling the signals ourselves (rather than in a shutdown hook) lets the drain run with
        // the JVM fully alive and the process exit 0 afterwards. Taken first: a SIGTERM during the
        // start (an orchestrator's stop right after a deploy) would otherwise end the JVM with 143.
        Signal.handle(new Signal("TERM"), s -> stop.countDown());
        Signal.handle(new Signal("INT"), s -> stop.countDown());
        // Netty's default leak detector keeps a stack trace for one buffer in 128: ~17 heap bytes per
        // relayed chunk on average (JMH RelayChunkBenchmark), where the relay otherwise allocates none.
        // The test suite runs it at "paranoid"; an operator can still ask for it with -D.
        if (System.getProperty(LEAK_DETECTION) == null) {
            System.setProperty(LEAK_DETECTION, "disabled");
        }
        Settings settings;
        try {
            settings = ConfigLoader.load(System.getenv(), Path.of(""));
        } catch (ConfigError e) {
            System.err.println("megallm-proxy: configuration error: " + e.getMessage());
            System.exit(2);
            return;
        }
        String logDirProblem = LogWriteWatch.probe(settings.logDir());
        if (logDirProblem != null) {
            System.err.println("megallm-proxy: LOG_DIR " + settings.logDir() + " cannot be written (" + logDirProblem
                    + "): app.log and access.log will not be written, the console has every line");
        }
        // Logback reads these when the first logger is created, which is below this line.
        System.setProperty("LOG_DIR", settings.logDir().toString());
        System.setProperty("LOG_LEVEL", settings.logLevel());
        System.setProperty("ACCESS_LOG_CONSOLE", Boolean.toString(settings.accessLogConsole()));
        System.setProperty("ACCESS_LOG_CONSOLE_RATE", Integer.toString(settings.accessLogConsoleRate()));
        Logger log = LoggerFactory.getLogger(Main.class);
        if (logDirProblem == null) {
            // Rolled files logback's own look-back (32 days) no longer reaches, after a long stop.
            RolledLogs.removeOld(settings.logDir(), LocalDate.now(), log);
        }

        ProxyServer server = new ProxyServer(settings);
        try {
            server.start();
        } catch (Exception e) {
            log.error("cannot listen on {}:{}: {}", settings.host(), settings.port(), e.toString());
            System.exit(1);
            return;
        }
        try {
            stop.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        log.info("signal received: shutting down");
        server.shutdown();
        System.exit(0);
    }
}
