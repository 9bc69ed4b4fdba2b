package io.megallm.proxy.server.shared;

/**
 * What an instance shares through Redis, each on its own commands: Redis may refuse one and take
 * the others (an ACL that lets a user touch some keys only, an entry of the wrong type under one
 * of them), and the log and {@code /health} say which.
 */
enum Sharing {

    KEY_STATES("key states"),
    USAGE("usage totals"),
    LIMITS("client limit windows");

    private final String label;

    Sharing(String label) {
        this.label = label;
    }

    @Override
    public String toString() {
        return label;
    }
}
