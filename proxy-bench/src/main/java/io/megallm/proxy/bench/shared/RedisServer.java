package io.megallm.proxy.bench.shared;

import io.megallm.proxy.bench.harness.ProcessService;
import io.megallm.proxy.bench.harness.Service;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * A {@code redis-server} for one bench run: the machine's own binary, on a free loopback port,
 * without persistence, so that no state carries from one run into the next.
 */
public final class RedisServer {

    private RedisServer() {
    }

    /** @throws IOException when {@code redis-server} is not installed or does not listen */
    public static Service start(Path dir) throws IOException {
        String binary = binary();
        if (binary == null) {
            throw new IOException("redis-server is not installed (apt-get install -y redis-server)");
        }
        int port = ProcessService.freePort();
        return ProcessService.start("redis", List.of(binary, "--port", Integer.toString(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no"), Map.of(), dir, port, 10_000);
    }

    public static String url(Service redis) {
        return "redis://127.0.0.1:" + redis.port();
    }

    private static String binary() {
        for (String d : System.getenv().getOrDefault("PATH", "/usr/bin").split(File.pathSeparator)) {
            Path p = Path.of(d, "redis-server");
            if (Files.isExecutable(p)) {
                return p.toString();
            }
        }
        return Files.isExecutable(Path.of("/usr/bin/redis-server")) ? "/usr/bin/redis-server" : null;
    }
}
