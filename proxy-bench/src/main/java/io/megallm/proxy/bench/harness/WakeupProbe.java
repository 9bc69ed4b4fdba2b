package io.megallm.proxy.bench.harness;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * What one hop through another thread costs on this machine, before any proxy logic: 160 bytes
 * written to a loopback socket, copied by a plain blocking relay thread to a second socket,
 * read back. Measured with the relay thread on the caller's core and, when taskset can move
 * it, on another core. On virtual machines the cross-core number is dominated by the time an
 * idle vCPU takes to wake up, and every proxied peer pays it twice per request.
 */
public final class WakeupProbe {

    /** Round-trip microseconds through a relay thread on the same core and on another core (NaN: not measured). */
    public record Result(double sameCoreUs, double crossCoreUs, String crossCpu) {
    }

    private static final java.util.concurrent.atomic.AtomicInteger COUNTER = new java.util.concurrent.atomic.AtomicInteger();

    private WakeupProbe() {
    }

    public static Result measure(String otherCpu, long millisEach) {
        double same = run(null, millisEach);
        double cross = otherCpu == null || otherCpu.isEmpty() ? Double.NaN : run(otherCpu, millisEach);
        return new Result(same, cross, otherCpu);
    }

    private static double run(String cpu, long millis) {
        try (ServerSocketChannel l1 = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0));
             ServerSocketChannel l2 = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0));
             SocketChannel up = SocketChannel.open(l1.getLocalAddress());
             SocketChannel upIn = l1.accept();
             SocketChannel cl = SocketChannel.open(l2.getLocalAddress());
             SocketChannel clOut = l2.accept()) {
            for (SocketChannel c : List.of(up, upIn, cl, clOut)) {
                c.setOption(StandardSocketOptions.TCP_NODELAY, true);
            }
            String name = "wprobe-" + COUNTER.incrementAndGet();
            Thread relay = new Thread(() -> {
                ByteBuffer b = ByteBuffer.allocateDirect(4096);
                try {
                    for (;;) {
                        b.clear();
                        if (upIn.read(b) < 0) {
                            return;
                        }
                        b.flip();
                        while (b.hasRemaining()) {
                            clOut.write(b);
                        }
                    }
                } catch (IOException e) {
                    // closed
                }
            }, name);
            relay.setDaemon(true);
            relay.start();
            if (cpu != null && !moveThread(name, cpu)) {
                return Double.NaN;
            }
            ByteBuffer msg = ByteBuffer.allocateDirect(160);
            while (msg.hasRemaining()) {
                msg.put((byte) 'x');
            }
            ByteBuffer in = ByteBuffer.allocateDirect(4096);
            long warmEnd = System.nanoTime() + millis * 500_000L;
            long end = warmEnd + millis * 1_000_000L;
            long ops = 0;
            long start = 0;
            while (true) {
                long now = System.nanoTime();
                if (start == 0 && now >= warmEnd) {
                    start = now;
                    ops = 0;
                }
                if (now >= end) {
                    break;
                }
                msg.position(0);
                while (msg.hasRemaining()) {
                    up.write(msg);
                }
                int got = 0;
                while (got < 160) {
                    in.clear();
                    int n = cl.read(in);
                    if (n < 0) {
                        return Double.NaN;
                    }
                    got += n;
                }
                ops++;
            }
            return ops == 0 ? Double.NaN : (System.nanoTime() - start) / 1e3 / ops;
        } catch (IOException e) {
            return Double.NaN;
        }
    }

    /** Pins one thread of this JVM, found by name in /proc/self/task, to {@code cpu}. */
    private static boolean moveThread(String name, String cpu) {
        try (var tasks = Files.list(Path.of("/proc/self/task"))) {
            for (Path t : (Iterable<Path>) tasks::iterator) {
                String comm = Files.readString(t.resolve("comm"), StandardCharsets.UTF_8).trim();
                if (name.equals(comm)) {
                    return Tools.run(List.of("taskset", "-p", "-c", cpu, t.getFileName().toString()), 5).code() == 0;
                }
            }
        } catch (IOException e) {
            return false;
        }
        return false;
    }
}
