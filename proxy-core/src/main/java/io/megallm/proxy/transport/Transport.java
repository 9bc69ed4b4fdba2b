package io.megallm.proxy.transport;

import io.netty.channel.ChannelFactory;
import io.netty.channel.IoHandlerFactory;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.ServerChannel;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.SocketProtocolFamily;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollChannelOption;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.channel.nio.NioIoHandler;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.util.NetUtil;

import java.nio.channels.spi.SelectorProvider;

/** Native epoll where the platform has it, NIO elsewhere; both sides of the relay use the same one. */
public final class Transport {

    private final String name;
    private final IoHandlerFactory ioHandlerFactory;
    private final Class<? extends ServerChannel> serverChannel;
    private final Class<? extends SocketChannel> socketChannel;

    private Transport(String name, IoHandlerFactory factory,
                      Class<? extends ServerChannel> serverChannel, Class<? extends SocketChannel> socketChannel) {
        this.name = name;
        this.ioHandlerFactory = factory;
        this.serverChannel = serverChannel;
        this.socketChannel = socketChannel;
    }

    public static Transport best() {
        if (!Boolean.getBoolean("megallm.proxy.forceNio") && Epoll.isAvailable()) {
            return new Transport("epoll", EpollIoHandler.newFactory(), EpollServerSocketChannel.class, EpollSocketChannel.class);
        }
        return nio();
    }

    public static Transport nio() {
        return new Transport("nio", NioIoHandler.newFactory(), NioServerSocketChannel.class, NioSocketChannel.class);
    }

    /**
     * Bytes a client connection's socket may hold that the kernel has not sent yet. Without a
     * bound Linux grows a socket's send buffer up to {@code tcp_wmem}'s maximum (4 MB) for a client
     * that reads nothing, so a stalled reader holds megabytes of kernel memory and the proxy sees
     * no backpressure, and no {@code SEND_TIMEOUT}, for tens of seconds. With it, what sits in the
     * socket is what is in flight (bounded by the client's window) plus this much, the proxy's own
     * buffer fills at once, and healthy clients keep the kernel's send-buffer autotuning.
     */
    static final long CLIENT_NOTSENT_LOWAT = 128 * 1024;

    /** Socket options of accepted client connections that only this transport has. */
    public void clientOptions(ServerBootstrap bootstrap) {
        if (name.equals("epoll")) {
            bootstrap.childOption(EpollChannelOption.TCP_NOTSENT_LOWAT, CLIENT_NOTSENT_LOWAT);
        }
    }

    /** Threads are named {@code <name>-N}, so thread dumps and logs say what a thread serves. */
    public MultiThreadIoEventLoopGroup newGroup(int threads, String name) {
        return new MultiThreadIoEventLoopGroup(threads, new DefaultThreadFactory(name), ioHandlerFactory);
    }

    public Class<? extends ServerChannel> serverChannel() {
        return serverChannel;
    }

    /**
     * The listening channel for {@code host}. An IPv4 address (0.0.0.0 included) gets an IPv4
     * socket: a dual-stack socket bound to 0.0.0.0 listens on every IPv6 address too (Netty and
     * the JDK bind it as ::), which an operator who firewalls IPv4 and wrote 0.0.0.0 does not
     * expect; Nginx's {@code listen 8000} is IPv4 only as well. {@code ::} and names stay as the
     * system makes them ({@code ::} is both families on Linux).
     */
    public ChannelFactory<ServerChannel> serverChannelFactory(String host) {
        boolean ipv4 = NetUtil.isValidIpV4Address(host);
        if (name.equals("epoll")) {
            return ipv4 ? () -> new EpollServerSocketChannel(SocketProtocolFamily.INET) : EpollServerSocketChannel::new;
        }
        return ipv4 ? () -> new NioServerSocketChannel(SelectorProvider.provider(), SocketProtocolFamily.INET)
                : NioServerSocketChannel::new;
    }

    public Class<? extends SocketChannel> socketChannel() {
        return socketChannel;
    }

    public String name() {
        return name;
    }
}
