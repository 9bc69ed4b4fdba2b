package io.megallm.proxy.testing;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.UnpooledByteBufAllocator;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * Fails a test class when Netty's leak detector (paranoid in every test JVM) reported a leaked
 * buffer while it ran. Registered for every test class through the service loader; reports
 * reach it through {@link LeakAppender}, configured in logback-test.xml.
 */
public final class LeakGuard implements BeforeAllCallback, AfterAllCallback {

    private static final List<String> REPORTS = new CopyOnWriteArrayList<>();

    static void report(String message) {
        REPORTS.add(message);
    }

    @Override
    public void beforeAll(ExtensionContext context) {
        collect();
        REPORTS.clear();
    }

    @Override
    public void afterAll(ExtensionContext context) {
        collect();
        if (!REPORTS.isEmpty()) {
            List<String> found = new ArrayList<>(REPORTS);
            REPORTS.clear();
            throw new AssertionError("Netty reported " + found.size() + " leaked buffer(s) in "
                    + context.getDisplayName() + ":\n" + String.join("\n----\n", found));
        }
    }

    /**
     * The detector reports a leak when it tracks a new buffer after the leaked one was
     * collected, so: collect garbage, then allocate tracked buffers, a few times over.
     */
    private static void collect() {
        for (int i = 0; i < 4; i++) {
            System.gc();
            System.runFinalization();
            for (int j = 0; j < 64; j++) {
                ByteBuf a = PooledByteBufAllocator.DEFAULT.directBuffer(16);
                ByteBuf b = UnpooledByteBufAllocator.DEFAULT.heapBuffer(16);
                a.release();
                b.release();
            }
        }
    }
}
