package io.megallm.proxy.key;

import java.util.List;

/**
 * Where key states outlive the process (contract §7). The core knows the port only: a file
 * in {@code proxy-server}, Redis later (§14).
 */
public interface KeyStateStore {

    KeyStateStore NONE = new KeyStateStore() {
        @Override
        public List<SavedKeyState> load() {
            return List.of();
        }

        @Override
        public void changed(KeyPool pool) {
        }
    };

    /** The states saved by an earlier run; empty when there are none or they cannot be read. */
    List<SavedKeyState> load();

    /**
     * Some key changed state. Called on event loops: must return at once. The store takes a fresh
     * {@link KeyPool#savedStates()} when it gets round to writing, so bursts of changes coalesce.
     */
    void changed(KeyPool pool);
}
