package io.megallm.proxy.bench.keys;

import io.megallm.proxy.bench.harness.ProcessService;
import io.megallm.proxy.bench.harness.InProcessProxy;
import io.megallm.proxy.bench.harness.Service;
import io.megallm.proxy.bench.harness.Tools;
import io.megallm.proxy.server.ProxyServer;
import io.megallm.proxy.server.config.ConfigLoader;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/** Starts one proxy version with the given settings; the keys bench compares two of them. */
interface ProxyLauncher {

    /** Its name in the report, e.g. {@code current} or {@code before issue 12}. */
    String version();

    /** Where it comes from, for the report. */
    String describe();

    /** Starts it listening on {@code port} with {@code env}, working in {@code work}. */
    Service start(Map<String, String> env, int port, Path work) throws Exception;

    /** Whether its instances share state through a Redis of the run's own (REDIS_URL). */
    default boolean sharesState() {
        return false;
    }

    /** {@code base} under another name, its instances sharing state through Redis or not. */
    static ProxyLauncher variant(ProxyLauncher base, String version, boolean shared) {
        return new ProxyLauncher() {
            @Override
            public String version() {
                return version;
            }

            @Override
            public String describe() {
                return base.describe() + (shared ? ", REDIS_URL set (a redis-server started for each run)"
                        : ", no REDIS_URL");
            }

            @Override
            public Service start(Map<String, String> env, int port, Path work) throws Exception {
                return base.start(env, port, work);
            }

            @Override
            public boolean sharesState() {
                return shared;
            }
        };
    }

    /** A proxy jar run as a child process (a fresh working directory: no .env, no config/). */
    static ProxyLauncher jar(String version, Path jar) {
        return new ProxyLauncher() {
            @Override
            public String version() {
                return version;
            }

            @Override
            public String describe() {
                return jar.toAbsolutePath().normalize().toString();
            }

            @Override
            public Service start(Map<String, String> env, int port, Path work) throws Exception {
                return ProcessService.start("proxy-" + version.replaceAll("[^A-Za-z0-9]+", "-"),
                        List.of(Tools.java(), "-jar", jar.toAbsolutePath().toString()), env, work, port, 60_000);
            }
        };
    }

    /** This build's proxy inside the bench's JVM (the smoke test: no jar needed). */
    static ProxyLauncher inProcess(String version) {
        return new ProxyLauncher() {
            @Override
            public String version() {
                return version;
            }

            @Override
            public String describe() {
                return "ProxyServer of this build, inside the bench JVM";
            }

            @Override
            public Service start(Map<String, String> env, int port, Path work) throws Exception {
                ProxyServer server = new ProxyServer(ConfigLoader.load(env, work)).start();
                return new InProcessProxy(version, describe(), server);
            }
        };
    }
}
