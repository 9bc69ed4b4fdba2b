package io.megallm.proxy.server;

import io.megallm.proxy.http.ClientLimits;
import io.megallm.proxy.http.ExchangeObserver;
import io.megallm.proxy.http.RequestReader;
import io.megallm.proxy.http.ServerLifecycle;
import io.megallm.proxy.key.KeyClock;
import io.megallm.proxy.key.KeyPolicy;
import io.megallm.proxy.key.KeyPool;
import io.megallm.proxy.key.KeyWaiters;
import io.megallm.proxy.key.RetryBudget;
import io.megallm.proxy.relay.Relay;
import io.megallm.proxy.relay.RelaySettings;
import io.megallm.proxy.server.access.AccessLog;
import io.megallm.proxy.server.clients.ClientGate;
import io.megallm.proxy.server.clients.ClientRegistry;
import io.megallm.proxy.server.usage.UsageLedger;
import io.megallm.proxy.server.config.Settings;
import io.megallm.proxy.server.metrics.ProxyMetrics;
import io.megallm.proxy.server.keys.KeyFile;
import io.megallm.proxy.server.keys.KeyFileWatcher;
import io.megallm.proxy.server.keys.KeyStateFile;
import io.megallm.proxy.server.routes.AccessControl;
import io.megallm.proxy.server.routes.Router;
import io.megallm.proxy.server.shared.RedisCounters;
import io.megallm.proxy.server.shared.RedisKeyStates;
import io.megallm.proxy.server.shared.SharedUsage;
import io.megallm.proxy.transport.Transport;
import io.megallm.proxy.upstream.BaseUrls;
import io.megallm.proxy.upstream.UpstreamPools;
import io.megallm.proxy.upstream.UpstreamSettings;
import io.megallm.proxy.upstream.UpstreamTarget;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.handler.ssl.SslContext;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.socket.SocketChannel;
import io.megallm.proxy.http.ResponseEncoder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** The assembled proxy: listening socket, event loops, key pool, relay and routes. */
public final class ProxyServer {

    private static final Logger log = LoggerFactory.getLogger(ProxyServer.class);

    /** Idle upstream connections are closed after this, before typical 300–400 s server-side cuts. */
    private static final long UPSTREAM_IDLE_TTL_SECONDS = 240;

    private final Settings settings;
    private final Transport transport;
    private final KeyPool keys;
    private final KeyFile keyFile;
    private KeyStateFile stateFile;
    private RedisKeyStates shared;
    private final ServerLifecycle lifecycle = new ServerLifecycle();
    private final ClientLimits clientLimits;
    private EventLoopGroup workers;
    private UpstreamPools pools;
    private BaseUrls urls;
    private ProxyMetrics metrics;
    private AccessLog accessLog;
    private KeyFileWatcher watcher;
    private KeyFileWatcher clientWatcher;
    private Channel listener;

    public ProxyServer(Settings settings) {
        this(settings, Transport.best());
    }

    /** The TLS context for an https upstream; null: the JVM's default trust (tests give their own). */
    private SslContext upstreamTls;

    /** Trust for the upstream's certificate other than the JVM's (tests with their own CA). */
    public ProxyServer upstreamTls(SslContext tls) {
        this.upstreamTls = tls;
        return this;
    }

    public ProxyServer(Settings settings, Transport transport) {
        this(settings, transport, KeyClock.SYSTEM);
    }

    /** {@code clock}: the key pool's clocks; tests pass their own so that rests and trials pass without sleeping. */
    public ProxyServer(Settings settings, Transport transport, KeyClock clock) {
        this.settings = settings;
        this.transport = transport;
        this.keys = new KeyPool(clock, policy(settings));
        this.keyFile = new KeyFile(settings.keysFile(), keys);
        this.clientLimits = new ClientLimits(settings.clientSettings());
    }

    /**
     * A trial's claim lasts as long as its request can take to get an answer head (every
     * same-key retry timing out), so that a request that vanished frees the trial by then.
     */
    private static KeyPolicy policy(Settings s) {
        long lease = (long) Math.ceil(s.timeoutSeconds()) * (s.maxRetries() + 2L);
        return new KeyPolicy(s.keyCooldownSeconds(), s.keyRecheckSeconds(), Math.max(1L, lease));
    }

    /** Binds the listening socket; throws when the address cannot be bound. */
    public ProxyServer start() throws InterruptedException {
        int threads = Math.max(1, Runtime.getRuntime().availableProcessors());
        workers = transport.newGroup(threads, "megallm-io");
        keyFile.loadAtStart();
        restoreKeyStates();
        watcher = new KeyFileWatcher(keyFile).start();
        List<String> baseUrls = settings.baseUrls();
        UpstreamTarget target = UpstreamTarget.parse(baseUrls.get(0));
        pools = new UpstreamPools(target, transport.socketChannel(), new UpstreamSettings(settings.poolMaxSize(),
                settings.poolConnections(), settings.timeoutMillis(), UPSTREAM_IDLE_TTL_SECONDS, threads),
                settings.egressProxies().get(0), upstreamTls);
        List<UpstreamPools> all = new ArrayList<>(List.of(pools));
        for (int i = 1; i < baseUrls.size(); i++) {
            all.add(pools.alongside(UpstreamTarget.parse(baseUrls.get(i)), settings.egressProxies().get(i)));
        }
        urls = new BaseUrls(all, System::nanoTime);
        // As many waiters as upstream connections: a request beyond that could not be sent anyway.
        KeyWaiters waiters = new KeyWaiters(keys, settings.poolMaxSize());
        metrics = new ProxyMetrics(keys, lifecycle, pools, waiters);
        RetryBudget budget = new RetryBudget(settings.retryBudgetPercent(), settings.retryBudgetMinPerSecond(),
                System::nanoTime);
        ClientGate gate = new ClientGate(() -> System.currentTimeMillis() / 1000);
        Relay relay = new Relay(keys, urls, new RelaySettings(settings.timeoutMillis(), settings.maxRetries(),
                settings.maxKeyRetries(), settings.keyCooldownSeconds(), settings.defaultModel()), lifecycle, metrics,
                new Relay.KeyAccess(budget, waiters, TimeUnit.SECONDS.toNanos(settings.keyWaitSeconds())), gate);
        ClientRegistry clients = clientRegistry();
        AccessControl access = new AccessControl(settings.adminToken(), clients);
        UsageLedger usage = new UsageLedger(System::currentTimeMillis);
        Router router = new Router(relay, keys, keyFile, access, metrics, gate, usage);
        if (settings.redisUrl() != null) {
            // After the state file's restore: what this instance remembers is merged into Redis.
            // States restored from the file keep the time they were recorded: a newer one in Redis wins.
            shared = new RedisKeyStates(settings.redisUrl(), settings.redisPool(), keys, keyFile,
                    stateFile::recordedAt).start();
            // Client limit windows and usage totals over every instance (contract §14).
            clients.share(new RedisCounters(shared));
            usage.share(new SharedUsage(shared, usage, keys::keys, clients::clients));
            router.sharedState(shared);
            metrics.sharedState(shared);
        }
        router.baseUrls(urls);
        metrics.baseUrls(urls);
        accessLog = new AccessLog();
        ExchangeObserver observer = exchange -> {
            usage.onEnd(exchange);
            ClientGate.release(exchange);
            metrics.onEnd(exchange);
            accessLog.onEnd(exchange);
        };
        long maxBody = settings.maxRequestBody();

        ServerBootstrap b = new ServerBootstrap()
                // Accepting on an I/O loop, as Nginx's workers do: with one loop (one core) a new
                // connection starts on the thread that serves it, with no hand-off.
                .group(workers)
                .channelFactory(transport.serverChannelFactory(settings.host()))
                .option(ChannelOption.SO_BACKLOG, 4096)
                .option(ChannelOption.SO_REUSEADDR, true)
                .childOption(ChannelOption.AUTO_READ, false)
                .childOption(ChannelOption.TCP_NODELAY, true)
                .childOption(ChannelOption.WRITE_BUFFER_WATER_MARK, new WriteBufferWaterMark(32 * 1024, 64 * 1024))
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        ch.pipeline().addLast("encoder", new ResponseEncoder())
                                .addLast("reader", new RequestReader(router, maxBody, lifecycle, observer,
                                        clientLimits, router));
                    }
                });
        transport.clientOptions(b);
        try {
            listener = b.bind(settings.host(), settings.port()).sync().channel();
        } catch (Exception e) {
            stopLoops();
            throw e;
        }
        log.info("megallm-proxy {} listening on {} ({} transport, {} event loops) -> {}", Version.VALUE,
                listener.localAddress(), transport.name(), threads, target);
        String epollAdvice = epollUnavailableWarning(System.getProperty("os.name", ""),
                Boolean.getBoolean("megallm.proxy.forceNio"), transport.name(),
                Epoll.isAvailable() ? null : Epoll.unavailabilityCause());
        if (epollAdvice != null) {
            log.warn(epollAdvice);
        }
        log.info("configuration: {}", settings.summary());
        settings.fileWarnings().forEach(log::warn);
        if (!access.adminTokenSet()) {
            log.warn("ADMIN_TOKEN is unset: /admin/* and /metrics answer loopback clients only");
        }
        if (!access.clientKeysRequired()) {
            log.warn("PROXY_API_KEYS is unset: any client that reaches this port can use the key pool");
        }
        return this;
    }

    /**
     * The one warning for a Linux process that fell back to NIO because epoll could not be
     * loaded, or null. Netty unpacks its native epoll library into a temporary directory and
     * loads it from there: a read-only root filesystem, or a /tmp mounted noexec (Docker's
     * {@code --tmpfs} default), makes that fail and Netty silently uses NIO, which has no
     * {@code TCP_NOTSENT_LOWAT}: a stalled reader is then noticed only once the kernel's send
     * buffer (up to 4 MB) is full. {@code -Dmegallm.proxy.forceNio} is a choice, not a failure:
     * no warning.
     */
    static String epollUnavailableWarning(String osName, boolean forcedNio, String transportName, Throwable cause) {
        if (forcedNio || !"nio".equals(transportName) || cause == null
                || !osName.toLowerCase(java.util.Locale.ROOT).startsWith("linux")) {
            return null;
        }
        String reason = String.valueOf(cause).lines().findFirst().orElse("").strip();
        return "epoll transport unavailable, running on NIO without TCP_NOTSENT_LOWAT (a client that stops"
                + " reading is noticed late): " + reason + ". Netty could not load its native library from its"
                + " temporary directory: mount /tmp with exec, or set -Dio.netty.native.workdir to a writable"
                + " exec directory";
    }

    /** States of the keys still in the key file come back from KEY_STATE_FILE; later changes go to it. */
    private void restoreKeyStates() {
        stateFile = new KeyStateFile(settings.keyStateFile());
        // Keys the key file lacks now get theirs when a reload brings them (KeyPool.restore).
        int restored = keys.restore(stateFile.load());
        if (restored > 0) {
            log.info("restored the states of {} key(s) from {}", restored, stateFile.path());
        }
        keys.lifecycle().addListener((key, from, to) -> stateFile.changed(keys));
        keys.onReload(() -> stateFile.changed(keys));
    }

    /** The clients of PROXY_API_KEYS: the client file, watched like the key file, or the plain list. */
    private ClientRegistry clientRegistry() {
        if (settings.clientsFile() == null) {
            return ClientRegistry.of(settings.proxyApiKeys());
        }
        try {
            ClientRegistry clients = ClientRegistry.fromFile(settings.clientsFile());
            clientWatcher = new KeyFileWatcher(settings.clientsFile(), clients::reload, "megallm-clients-watch").start();
            return clients;
        } catch (java.io.IOException e) {
            // Checked at start already (ConfigLoader); this is the file changed in between.
            throw new IllegalStateException("PROXY_API_KEYS: " + e.getMessage());
        }
    }

    public int port() {
        return ((InetSocketAddress) listener.localAddress()).getPort();
    }

    public KeyPool keys() {
        return keys;
    }

    public ServerLifecycle lifecycle() {
        return lifecycle;
    }

    public KeyFileWatcher watcher() {
        return watcher;
    }

    public BaseUrls baseUrls() {
        return urls;
    }

    public UpstreamPools pools() {
        return pools;
    }

    /** The Redis side of the key states, or null without REDIS_URL. */
    public RedisKeyStates shared() {
        return shared;
    }

    public ClientLimits clientLimits() {
        return clientLimits;
    }

    /**
     * Graceful stop: refuse new connections at once, let requests in flight finish for up to
     * {@code SHUTDOWN_GRACE}, then close what is left.
     */
    public void shutdown() {
        if (watcher != null) {
            watcher.close();
        }
        if (clientWatcher != null) {
            clientWatcher.close();
        }
        if (listener != null) {
            listener.close().syncUninterruptibly();
        }
        lifecycle.startDrain();
        int inFlight = lifecycle.inFlight();
        if (inFlight > 0) {
            log.info("draining {} request(s) in flight, up to {}s", inFlight, settings.shutdownGraceSeconds());
        }
        boolean idle;
        try {
            idle = lifecycle.awaitIdle(settings.shutdownGraceSeconds(), TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            idle = false;
        }
        if (!idle) {
            log.warn("shutdown grace of {}s over: closing {} request(s) still in flight",
                    settings.shutdownGraceSeconds(), lifecycle.inFlight());
        }
        lifecycle.closeAll();
        if (pools != null) {
            urls.close();
        }
        if (shared != null) {
            shared.close();
        }
        stopLoops();
        if (stateFile != null) {
            stateFile.close();
        }
        if (accessLog != null) {
            accessLog.flushStopped();
        }
        log.info("megallm-proxy stopped");
    }

    private void stopLoops() {
        if (workers != null) {
            workers.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly();
        }
    }
}
