package io.megallm.proxy.server.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValue;
import io.megallm.proxy.upstream.EgressProxy;
import io.megallm.proxy.upstream.UpstreamTarget;

import java.nio.file.Files;
import java.nio.file.Path;
import io.megallm.proxy.server.clients.ClientFile;
import io.megallm.proxy.server.clients.ClientSpec;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Builds {@link Settings} from, in rising priority: {@code reference.conf} in the jar, the
 * optional config file, a {@code .env} file (only for variables not set), and the environment.
 * Every value is checked here, so that a bad one stops the start with one line that names it.
 */
public final class ConfigLoader {

    static final List<String> NAMES = List.of(
            "MEGALLM_BASE_URL", "MEGALLM_TIMEOUT", "MEGALLM_MAX_RETRIES", "MAX_KEY_RETRIES", "HOST", "PORT",
            "LOG_LEVEL", "KEYS_FILE", "LOG_DIR", "HTTP_POOL_MAXSIZE", "HTTP_POOL_CONNECTIONS", "MAX_REQUEST_BODY",
            "KEY_COOLDOWN", "ADMIN_TOKEN", "PROXY_API_KEYS", "SHUTDOWN_GRACE", "ACCESS_LOG_CONSOLE",
            "ACCESS_LOG_CONSOLE_RATE",
            "CLIENT_HEADER_TIMEOUT", "CLIENT_BODY_TIMEOUT", "KEEPALIVE_TIMEOUT", "SEND_TIMEOUT", "MAX_CONNECTIONS",
            "DEFAULT_MODEL", "KEY_RECHECK", "KEY_WAIT", "RETRY_BUDGET", "RETRY_BUDGET_MIN", "KEY_STATE_FILE",
            "REDIS_URL", "REDIS_POOL", "REDIS_CA_FILE");

    private static final List<String> SECRET_NAMES = List.of("ADMIN_TOKEN", "PROXY_API_KEYS");

    /**
     * Read from the environment (or .env) only, never from the config file: the egress proxy
     * variables, as every HTTP client reads them, and the file's own name.
     */
    private static final List<String> ENVIRONMENT_ONLY = List.of("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
            "CONFIG_FILE");

    private final Config config;
    private final Path workDir;
    private final Map<String, String> env;
    private final List<String> fileWarnings;

    private ConfigLoader(Config config, Path workDir, Map<String, String> env, List<String> fileWarnings) {
        this.config = config;
        this.workDir = workDir;
        this.env = env;
        this.fileWarnings = fileWarnings;
    }

    public static Settings load(Map<String, String> environment, Path workDir) throws ConfigError {
        Map<String, String> env = new HashMap<>(DotEnv.read(workDir.resolve(".env")));
        env.putAll(environment);

        Config file = ConfigFactory.empty();
        List<String> fileWarnings = List.of();
        String configFile = env.get("CONFIG_FILE");
        Path path = configFile != null && !configFile.isBlank()
                ? workDir.resolve(configFile.strip())
                : workDir.resolve("config/application.conf");
        if (Files.isRegularFile(path)) {
            try {
                file = ConfigFactory.parseFile(path.toFile());
            } catch (ConfigException e) {
                throw new ConfigError("CONFIG_FILE=\"" + path + "\" is not valid HOCON ("
                        + quotedTextHidden(firstLine(e.getMessage())) + ")");
            }
            fileWarnings = new ArrayList<>(unknownNames(file, path));
            fileWarnings.addAll(commentCuts(path));
        } else if (configFile != null && !configFile.isBlank()) {
            throw new ConfigError("CONFIG_FILE=\"" + configFile + "\" does not exist or is not a file");
        }

        Map<String, String> fromEnv = new HashMap<>();
        for (String name : NAMES) {
            String v = env.get(name);
            if (v != null) {
                fromEnv.put(name, v);
            }
        }
        Config merged;
        try {
            merged = ConfigFactory.parseMap(fromEnv, "environment")
                    .withFallback(file)
                    .withFallback(ConfigFactory.parseResources(ConfigLoader.class.getClassLoader(), "reference.conf"))
                    .resolve();
        } catch (ConfigException e) {
            throw new ConfigError("configuration could not be resolved (" + firstLine(e.getMessage()) + ")");
        }
        return new ConfigLoader(merged, workDir, env, fileWarnings).settings();
    }

    private Settings settings() throws ConfigError {
        String baseUrl = string("MEGALLM_BASE_URL");
        // Contract §15: one base URL, or several comma-separated, used in order of preference.
        List<UpstreamTarget> targets = new ArrayList<>();
        for (String one : baseUrl.split(",")) {
            if (one.isBlank()) {
                throw bad("MEGALLM_BASE_URL", "has an empty entry in its list");
            }
            try {
                targets.add(UpstreamTarget.parse(one.strip()));
            } catch (IllegalArgumentException e) {
                // Not bad(): a refused URL may carry a password or an api_key query, masked here.
                throw new ConfigError("MEGALLM_BASE_URL=\"" + urlForMessage(baseUrl) + "\" " + e.getMessage());
            }
        }
        if (targets.size() > 64) {
            throw bad("MEGALLM_BASE_URL", "lists more than 64 URLs");
        }
        java.util.Set<String> seen = new java.util.HashSet<>();
        for (UpstreamTarget t : targets) {
            // The same URL twice (also as http://h/v1/ or HTTP://h/v1) would be tried twice over in
            // a failover and be two identical series in /metrics.
            if (!seen.add(t.toString())) {
                throw bad("MEGALLM_BASE_URL", "lists " + t + " twice");
            }
        }
        List<EgressProxy> egress = new ArrayList<>();
        for (UpstreamTarget t : targets) {
            egress.add(EgressSelection.select(env, t));
        }
        double timeout = positiveNumber("MEGALLM_TIMEOUT");
        int maxRetries = intAtLeast("MEGALLM_MAX_RETRIES", 0, 100);
        int maxKeyRetries = intAtLeast("MAX_KEY_RETRIES", 0, 10_000);
        String host = string("HOST").strip();
        if (host.isEmpty()) {
            throw bad("HOST", "is empty");
        }
        int port = intAtLeast("PORT", 0, 65535);
        String level = logLevel();
        Path keysFile = workDir.resolve(nonEmpty("KEYS_FILE"));
        Path logDir = workDir.resolve(nonEmpty("LOG_DIR"));
        int poolMax = intAtLeast("HTTP_POOL_MAXSIZE", 1, Integer.MAX_VALUE);
        int poolIdle = intAtLeast("HTTP_POOL_CONNECTIONS", 0, Integer.MAX_VALUE);
        long maxBody = bytes("MAX_REQUEST_BODY");
        long cooldown = (long) Math.ceil(nonNegativeNumber("KEY_COOLDOWN"));
        String adminToken = optional("ADMIN_TOKEN");
        if (adminToken != null && adminToken.chars().anyMatch(c -> c < 0x20 || c > 0x7e)) {
            // Header bytes are read one char per byte and clients disagree on how to encode the rest
            // (curl: UTF-8, browsers and Python: Latin-1): such a token shut the admin routes for good.
            throw bad("ADMIN_TOKEN", "must be printable ASCII (it travels in an HTTP header)");
        }
        String apiKeys = optional("PROXY_API_KEYS");
        List<String> clientKeys = clientKeys(apiKeys);
        Path clientsFile = apiKeys != null && apiKeys.startsWith("@") ? workDir.resolve(apiKeys.substring(1).strip()) : null;
        long grace = (long) Math.ceil(nonNegativeNumber("SHUTDOWN_GRACE"));
        boolean accessConsole = bool("ACCESS_LOG_CONSOLE");
        int accessConsoleRate = intAtLeast("ACCESS_LOG_CONSOLE_RATE", 0, 100_000_000);
        double headerTimeout = positiveNumber("CLIENT_HEADER_TIMEOUT");
        double bodyTimeout = positiveNumber("CLIENT_BODY_TIMEOUT");
        double keepaliveTimeout = positiveNumber("KEEPALIVE_TIMEOUT");
        double sendTimeout = positiveNumber("SEND_TIMEOUT");
        int maxConnections = intAtLeast("MAX_CONNECTIONS", 1, Integer.MAX_VALUE);
        String defaultModel = optional("DEFAULT_MODEL");
        if (defaultModel != null && defaultModel.chars().anyMatch(c -> c < 0x20 || c == 0x7f)) {
            throw bad("DEFAULT_MODEL", "must be a model name on one line");
        }
        long recheck = (long) Math.ceil(nonNegativeNumber("KEY_RECHECK"));
        long keyWait = (long) Math.ceil(nonNegativeNumber("KEY_WAIT"));
        int budget = intAtLeast("RETRY_BUDGET", 0, 1_000_000);
        int budgetMin = intAtLeast("RETRY_BUDGET_MIN", 0, 1_000_000);
        Path stateFile = workDir.resolve(nonEmpty("KEY_STATE_FILE"));
        RedisUrl redis = redisUrl();
        String redisPool = nonEmpty("REDIS_POOL");
        if (!redisPool.matches("[A-Za-z0-9_.-]{1,64}")) {
            throw bad("REDIS_POOL", "must be 1 to 64 letters, digits, '_', '.' or '-'");
        }
        return new Settings(baseUrl.strip(), timeout, maxRetries, maxKeyRetries, host, port, level, keysFile, logDir,
                poolMax, poolIdle, maxBody, cooldown, adminToken, List.copyOf(clientKeys), clientsFile, grace, accessConsole, accessConsoleRate,
                headerTimeout, bodyTimeout, keepaliveTimeout, sendTimeout, maxConnections, defaultModel,
                recheck, keyWait, budget, budgetMin, stateFile, java.util.Collections.unmodifiableList(egress), redis, redisPool,
                fileWarnings);
    }

    /**
     * One warning for each top-level name of the config file that is no setting: HOCON takes any
     * name, so a typo ({@code MEGALLM_TIMOUT}) or a lower-case name ({@code max_key_retries}) was
     * ignored without a word. The closest setting is named when one is close (the same but for
     * case, or at most two letters apart). Only the file's names: the environment holds many
     * variables that are none of the proxy's. A name that does not look like a setting's (a key
     * pasted in the wrong file) is not shown.
     */
    static List<String> unknownNames(Config file, Path path) {
        List<String> warnings = new ArrayList<>();
        List<Map.Entry<String, ConfigValue>> entries = new ArrayList<>(file.root().entrySet());
        // In the file's order (the object's own order is a hash map's).
        entries.sort(java.util.Comparator.comparingInt((Map.Entry<String, ConfigValue> e) -> e.getValue().origin()
                .lineNumber()).thenComparing(Map.Entry::getKey));
        for (Map.Entry<String, ConfigValue> e : entries) {
            String name = e.getKey();
            if (NAMES.contains(name)) {
                continue;
            }
            int line = e.getValue().origin().lineNumber();
            String where = path + (line > 0 ? " line " + line : "");
            if (!name.matches("[A-Za-z][A-Za-z0-9_]{0,63}")) {
                warnings.add(where + ": a name that is no setting is ignored (not shown: it does not look like one)");
                continue;
            }
            String upper = name.toUpperCase(Locale.ROOT);
            if (ENVIRONMENT_ONLY.contains(upper)) {
                warnings.add(where + ": " + name + " is ignored here: it is read from the environment (or .env) only");
                continue;
            }
            String closest = null;
            int best = 3;
            for (String known : NAMES) {
                int d = editDistance(upper, known, best);
                if (d < best) {
                    best = d;
                    closest = known;
                }
            }
            warnings.add(where + ": unknown setting " + name + " is ignored"
                    + (closest == null ? "" : " (did you mean " + closest + "?)"));
        }
        return List.copyOf(warnings);
    }

    private static final java.util.regex.Pattern UNQUOTED_SETTING =
            java.util.regex.Pattern.compile("^\\s*([A-Za-z][A-Za-z0-9_]*)\\s*[=:]\\s*([^\"'\\s].*)$");

    /**
     * Settings whose unquoted value holds {@code #} or {@code //}: HOCON ends the value there and
     * reads the rest as a comment, so {@code ADMIN_TOKEN = abc#def} is the token {@code abc}, a
     * weaker secret than the operator wrote, without a word (audit). One line each, never the value.
     */
    static List<String> commentCuts(Path path) {
        List<String> warnings = new ArrayList<>();
        List<String> lines;
        try {
            lines = Files.readAllLines(path, java.nio.charset.StandardCharsets.UTF_8);
        } catch (java.io.IOException | java.io.UncheckedIOException e) {
            return warnings;
        }
        for (int i = 0; i < lines.size(); i++) {
            java.util.regex.Matcher m = UNQUOTED_SETTING.matcher(lines.get(i));
            if (!m.matches() || !NAMES.contains(m.group(1))) {
                continue;
            }
            String value = m.group(2);
            // After white space it is a comment the operator meant ("PORT = 9001  # the port");
            // glued to the value it is part of what they meant. (An unquoted URL is refused by
            // HOCON itself, at its colon, with a hint to quote it.)
            int cut = glued(value, "#");
            int slashes = glued(value, "//");
            if (cut < 0 && slashes < 0) {
                continue;
            }
            warnings.add(path + " line " + (i + 1) + ": the value of " + m.group(1) + " is cut at its first "
                    + (cut >= 0 && (slashes < 0 || cut < slashes) ? "#" : "//")
                    + " (HOCON reads the rest of the line as a comment); put the value in double quotes");
        }
        return warnings;
    }

    /** The first {@code marker} in {@code value} right after a character that is not white space, or -1. */
    private static int glued(String value, String marker) {
        for (int at = value.indexOf(marker); at >= 0; at = value.indexOf(marker, at + 1)) {
            if (at > 0 && !Character.isWhitespace(value.charAt(at - 1))) {
                return at;
            }
            if (at == 0 || Character.isWhitespace(value.charAt(at - 1))) {
                // A comment the operator meant: the value ends before it, and so does the search.
                return -1;
            }
        }
        return -1;
    }

    /** Levenshtein distance of {@code a} and {@code b}, or {@code limit} when it is at least that. */
    static int editDistance(String a, String b, int limit) {
        if (Math.abs(a.length() - b.length()) >= limit) {
            return limit;
        }
        int[] prev = new int[b.length() + 1];
        int[] cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) {
            prev[j] = j;
        }
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            int rowMin = cur[0];
            for (int j = 1; j <= b.length(); j++) {
                int cost = a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1;
                cur[j] = Math.min(Math.min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + cost);
                rowMin = Math.min(rowMin, cur[j]);
            }
            if (rowMin >= limit) {
                return limit;
            }
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return Math.min(prev[b.length()], limit);
    }

    /** REDIS_URL's value goes into no message: its password would. The masked form names it instead. */
    private RedisUrl redisUrl() throws ConfigError {
        String v = optional("REDIS_URL");
        if (v == null) {
            return null;
        }
        RedisUrl url;
        try {
            url = RedisUrl.parse(v);
        } catch (IllegalArgumentException e) {
            throw new ConfigError("REDIS_URL=\"" + RedisUrl.maskText(v) + "\" " + e.getMessage());
        }
        // A Redis whose certificate no public CA signed (self-signed, a company CA): trusted through
        // this file, for Redis only, so that the upstream keeps the JVM's own trust.
        String ca = optional("REDIS_CA_FILE");
        if (ca == null) {
            return url;
        }
        if (!url.tls()) {
            throw bad("REDIS_CA_FILE", "is for a rediss:// REDIS_URL (TLS); this one is redis://");
        }
        Path pem = workDir.resolve(ca);
        if (!Files.isReadable(pem)) {
            throw bad("REDIS_CA_FILE", "cannot be read");
        }
        return url.trusting(pem);
    }

    /** {@code a,b,c}, or {@code @path} to a file of one key a line ('#' comments, blanks ignored). */
    private List<String> clientKeys(String value) throws ConfigError {
        List<String> keys = new ArrayList<>();
        if (value == null) {
            return keys;
        }
        if (value.startsWith("@")) {
            Path file = workDir.resolve(value.substring(1).strip());
            ClientFile.Parsed parsed;
            try {
                parsed = ClientFile.read(file);
            } catch (java.io.IOException e) {
                throw new ConfigError("PROXY_API_KEYS: " + e.getMessage());
            }
            // The client file (contract §13): a key first, then optional name= and limits. Bad lines
            // are logged by the server when it loads the file; here only whether any client is left.
            for (ClientSpec spec : parsed.clients()) {
                keys.add(spec.key());
            }
            if (keys.isEmpty()) {
                throw new ConfigError("PROXY_API_KEYS names the file " + file + ", which has no keys");
            }
            return keys;
        }
        for (String k : value.split(",")) {
            if (!k.isBlank()) {
                keys.add(k.strip());
            }
        }
        if (keys.stream().anyMatch(k -> k.chars().anyMatch(c -> c < 0x20 || c > 0x7e))) {
            // As the client file skips such a key: no client could ever present it (see ADMIN_TOKEN).
            throw bad("PROXY_API_KEYS", "holds a key that is not printable ASCII (keys travel in an HTTP header)");
        }
        if (keys.isEmpty()) {
            // Only commas and blanks: what Compose makes of ${K1},${K2} when both are missing. The
            // operator meant to require keys; taking it as unset would open the pool to everyone.
            // (A blank value still counts as unset: Compose passes one for a missing variable.)
            throw new ConfigError("PROXY_API_KEYS is set but holds no key, only commas and blanks"
                    + " (a variable it was made of is missing?): give client keys, or leave it empty to let anyone call");
        }
        return keys;
    }

    private String string(String name) throws ConfigError {
        try {
            ConfigValue v = config.getValue(name);
            Object raw = v.unwrapped();
            if (raw == null || raw instanceof Map || raw instanceof List) {
                throw bad(name, "is not a single value");
            }
            return raw.toString();
        } catch (ConfigException.Missing e) {
            throw new ConfigError(name + " is not set");
        }
    }

    private String nonEmpty(String name) throws ConfigError {
        String v = string(name).strip();
        if (v.isEmpty()) {
            throw bad(name, "is empty");
        }
        return v;
    }

    private String optional(String name) throws ConfigError {
        if (!config.hasPath(name)) {
            return null;
        }
        Object raw = config.getValue(name).unwrapped();
        if (raw instanceof Map || raw instanceof List) {
            // Its text ("[ck-one, ck-two]") would be taken for the value: client keys "[ck-one" and "ck-two]".
            throw bad(name, "is not a single value (a list? write it as one string, comma-separated where a list is meant)");
        }
        String v = raw.toString().strip();
        return v.isEmpty() ? null : v;
    }

    private double number(String name) throws ConfigError {
        String v = string(name).strip();
        try {
            double d = Double.parseDouble(v);
            if (Double.isNaN(d) || Double.isInfinite(d)) {
                throw bad(name, "is not a finite number");
            }
            return d;
        } catch (NumberFormatException e) {
            throw bad(name, "is not a number");
        }
    }

    private double positiveNumber(String name) throws ConfigError {
        double d = number(name);
        if (d <= 0) {
            throw bad(name, "must be greater than 0");
        }
        return d;
    }

    private double nonNegativeNumber(String name) throws ConfigError {
        double d = number(name);
        if (d < 0) {
            throw bad(name, "must not be negative");
        }
        return d;
    }

    private int intAtLeast(String name, int min, int max) throws ConfigError {
        String v = string(name).strip();
        long n;
        try {
            n = Long.parseLong(v);
        } catch (NumberFormatException e) {
            throw bad(name, "is not a whole number");
        }
        if (n < min) {
            throw bad(name, min == 0 ? "must not be negative" : "must be at least " + min);
        }
        if (n > max) {
            throw bad(name, "must be at most " + max);
        }
        return (int) n;
    }

    private long bytes(String name) throws ConfigError {
        long n;
        try {
            n = config.getBytes(name);
        } catch (ConfigException e) {
            throw bad(name, "is not a size (examples: 10m, 512k, 1048576)");
        }
        if (n <= 0) {
            throw bad(name, "must be greater than 0");
        }
        return n;
    }

    private boolean bool(String name) throws ConfigError {
        String v = string(name).strip().toLowerCase(Locale.ROOT);
        return switch (v) {
            case "true", "1", "yes", "on" -> true;
            case "false", "0", "no", "off" -> false;
            default -> throw bad(name, "is not one of true, false");
        };
    }

    private String logLevel() throws ConfigError {
        String v = string("LOG_LEVEL").strip().toUpperCase(Locale.ROOT);
        return switch (v) {
            case "DEBUG", "INFO", "ERROR" -> v;
            case "WARNING", "WARN" -> "WARN";
            default -> throw bad("LOG_LEVEL", "is not one of DEBUG, INFO, WARNING, ERROR");
        };
    }

    /** A list of URLs as a message may show it: user info as {@code ***@}, a query or fragment as {@code ?***}. */
    static String urlForMessage(String urls) {
        StringBuilder shown = new StringBuilder();
        for (String one : urls.split(",", -1)) {
            String v = RedisUrl.maskText(one).replaceAll("\\p{Cntrl}", "?");
            int cut = v.length();
            for (char c : new char[] {'?', '#'}) {
                int at = v.indexOf(c);
                if (at >= 0 && at < cut) {
                    cut = at;
                }
            }
            if (shown.length() > 0) {
                shown.append(',');
            }
            shown.append(v, 0, cut).append(cut < v.length() ? "?***" : "");
        }
        return shown.length() > 200 ? shown.substring(0, 200) + "…" : shown.toString();
    }

    private ConfigError bad(String name, String why) throws ConfigError {
        String shown = SECRET_NAMES.contains(name) ? "(hidden)" : quoted(name);
        return new ConfigError(name + "=" + shown + " " + why);
    }

    private String quoted(String name) {
        try {
            Object raw = config.getValue(name).unwrapped();
            String s = String.valueOf(raw).replaceAll("\\p{Cntrl}", "?");
            return "\"" + (s.length() > 200 ? s.substring(0, 200) + "…" : s) + "\"";
        } catch (ConfigException e) {
            return "\"\"";
        }
    }

    private static final java.util.regex.Pattern QUOTED = java.util.regex.Pattern.compile("'([^']*)'");

    /**
     * HOCON's parse errors quote the text they stumbled on: {@code ADMIN_TOKEN s3cret} (no '=') is
     * "Key 'ADMIN_TOKEN s3cret' may not be…", and a pool key pasted into the file is quoted whole.
     * Quoted text of more than one character is not shown; the single-character tokens HOCON names
     * ("got ':'") stay, as they say what to fix.
     */
    static String quotedTextHidden(String message) {
        return QUOTED.matcher(message).replaceAll(m -> m.group(1).length() <= 1
                ? java.util.regex.Matcher.quoteReplacement(m.group()) : "'(not shown)'");
    }

    private static String firstLine(String message) {
        if (message == null) {
            return "unknown error";
        }
        int nl = message.indexOf('\n');
        return nl < 0 ? message : message.substring(0, nl);
    }
}
