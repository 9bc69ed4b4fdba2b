package io.megallm.proxy.server.shared;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;

/**
 * The commands one beat sends for one kind of sharing. A command that fails is reported at once
 * ({@link RedisKeyStates#failed}: an error Redis answered makes that sharing unavailable); the
 * sharing counts as working again only when a whole round that wrote something went through, so
 * that a round where some commands pass and others are refused does not flip it back and forth.
 * Built and ended on the shared-state thread.
 */
final class Round {

    private final RedisKeyStates link;
    private final Sharing what;
    private final List<CompletableFuture<?>> commands = new ArrayList<>();
    private boolean writes;

    Round(RedisKeyStates link, Sharing what) {
        this.link = link;
        this.what = what;
    }

    /** A command that changes what is shared (a script): only a round with one can show the sharing works. */
    <T> CompletableFuture<T> write(CompletionStage<T> command) {
        writes = true;
        return add(command);
    }

    /** A command that only reads: its failure counts, its success alone shows nothing. */
    <T> CompletableFuture<T> read(CompletionStage<T> command) {
        return add(command);
    }

    private <T> CompletableFuture<T> add(CompletionStage<T> command) {
        CompletableFuture<T> f = command.toCompletableFuture();
        commands.add(f);
        f.whenComplete((r, e) -> {
            if (e != null) {
                link.execute(() -> link.failed(what, e));
            }
        });
        return f;
    }

    /** Once every command of the round is answered: none failed, and one wrote, so the sharing works. */
    void end() {
        if (!writes) {
            return;
        }
        CompletableFuture.allOf(commands.toArray(new CompletableFuture<?>[0])).whenComplete((v, e) -> {
            if (e == null) {
                link.execute(() -> link.works(what));
            }
        });
    }
}
