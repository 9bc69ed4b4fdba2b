package io.megallm.proxy.bench.jmh;

/**
 * Keeps the proxy code that runs inside a benchmark JVM from writing log files: the bench jar
 * ships a console-only logback.xml; this only makes sure nothing else overrides it.
 */
final class BenchLogging {

    private BenchLogging() {
    }

    static void quiet() {
        if (System.getProperty("LOG_LEVEL") == null) {
            System.setProperty("LOG_LEVEL", "WARN");
        }
        if (System.getProperty("LOG_DIR") == null) {
            System.setProperty("LOG_DIR", System.getProperty("java.io.tmpdir") + "/megallm-bench-logs");
        }
    }
}
