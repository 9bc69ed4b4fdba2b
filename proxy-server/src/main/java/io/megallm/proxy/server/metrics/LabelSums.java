package io.megallm.proxy.server.metrics;

import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.BiConsumer;
import java.util.function.Function;

/**
 * Counters summed by label over members that may share one (keys with the same mask, clients
 * with the same name), made never to go down while their label stays. A member that leaves (its
 * line removed from the file) or moves to another label (renamed) leaves its counts behind under
 * the label it had: without that, the label's sum would drop, and Prometheus reads any drop of a
 * counter as a restart, so {@code increase()} would count the members that stayed all over again.
 * A label with no member left is no longer written, its counts with it, as a series may end.
 */
public final class LabelSums<M> {

    private final int width;
    private final Function<M, String> label;
    private final BiConsumer<M, long[]> addCounts;
    /** The members of the last call, each with the label it had then. */
    private Map<M, String> members = new IdentityHashMap<>();
    /** Per label: what members that left it had counted. */
    private final Map<String, long[]> departed = new HashMap<>();

    /** {@code addCounts} adds a member's {@code width} counters into the row it is given. */
    public LabelSums(int width, Function<M, String> label, BiConsumer<M, long[]> addCounts) {
        this.width = width;
        this.label = label;
        this.addCounts = addCounts;
    }

    /** Each label of {@code live} with its counters: the members' sums and what left it. In first-seen order. */
    public synchronized Map<String, long[]> sums(Iterable<? extends M> live) {
        Map<String, long[]> sums = new LinkedHashMap<>();
        Map<M, String> now = new IdentityHashMap<>();
        for (M m : live) {
            String l = label.apply(m);
            addCounts.accept(m, sums.computeIfAbsent(l, k -> new long[width]));
            now.put(m, l);
        }
        members.forEach((m, was) -> {
            if (!was.equals(now.get(m))) {
                // Read now, not at the last call: what it counted since then stays counted.
                addCounts.accept(m, departed.computeIfAbsent(was, k -> new long[width]));
            }
        });
        members = now;
        departed.keySet().retainAll(sums.keySet());
        departed.forEach((l, left) -> {
            long[] row = sums.get(l);
            for (int i = 0; i < width; i++) {
                row[i] += left[i];
            }
        });
        return sums;
    }
}
