package io.megallm.proxy.server.config;

import io.megallm.proxy.http.ClientSettings;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Contract §3: defaults, the order of the sources, and one clear line for every bad value. */
class ConfigLoaderTest {

    private static final String ADMIN_TOKEN = "s3cret-admin-token-value";

    @TempDir
    Path dir;

    private Settings load(Map<String, String> env) throws ConfigError {
        return ConfigLoader.load(env, dir);
    }

    private void write(String relative, String content) throws Exception {
        Path p = dir.resolve(relative);
        if (p.getParent() != null) {
            Files.createDirectories(p.getParent());
        }
        Files.writeString(p, content, StandardCharsets.UTF_8);
    }

    private ConfigError rejected(Map<String, String> env) {
        ConfigError e = assertThrows(ConfigError.class, () -> load(env));
        assertOneLine(e);
        return e;
    }

    private static void assertOneLine(ConfigError e) {
        String m = e.getMessage();
        assertNotNull(m);
        assertFalse(m.isBlank(), "empty message");
        assertFalse(m.contains("\n") || m.contains("\r"), "message is not one line: " + m);
        assertEquals(0, e.getStackTrace().length, "a configuration error carries no stack trace");
        assertNull(e.getCause());
    }

    // ---- defaults and overrides ----------------------------------------------------------------

    @Test
    void everyDefaultOfTheContractTable() throws Exception {
        Settings s = load(Map.of());
        assertEquals("https://ai.megallm.io/v1", s.baseUrl());
        assertEquals(120.0, s.timeoutSeconds());
        assertEquals(120_000L, s.timeoutMillis());
        assertEquals(3, s.maxRetries());
        assertEquals(3, s.maxKeyRetries());
        assertEquals("0.0.0.0", s.host());
        assertEquals(8000, s.port());
        assertEquals("INFO", s.logLevel());
        assertEquals(dir.resolve("data/keys.txt"), s.keysFile());
        assertEquals(dir.resolve("logs"), s.logDir());
        assertEquals(10_000, s.poolMaxSize());
        assertEquals(100, s.poolConnections());
        assertEquals(10L * 1024 * 1024, s.maxRequestBody());
        assertEquals(60L, s.keyCooldownSeconds());
        assertNull(s.adminToken());
        assertEquals(List.of(), s.proxyApiKeys());
        assertEquals(30L, s.shutdownGraceSeconds());
        assertTrue(s.accessLogConsole());
        assertEquals(100, s.accessLogConsoleRate());
        assertEquals(300L, s.keyRecheckSeconds());
        assertEquals(10L, s.keyWaitSeconds());
        assertEquals(20, s.retryBudgetPercent());
        assertEquals(10, s.retryBudgetMinPerSecond());
        assertEquals(dir.resolve("data/key-state.json"), s.keyStateFile());
    }

    @Test
    void keyLifecycleSettingsFromTheEnvironment() throws Exception {
        Settings s = load(Map.of("KEY_RECHECK", "0", "KEY_WAIT", "2.5", "RETRY_BUDGET", "50", "RETRY_BUDGET_MIN", "0",
                "KEY_STATE_FILE", "/var/lib/megallm/state.json"));
        assertEquals(0L, s.keyRecheckSeconds());
        assertEquals(3L, s.keyWaitSeconds(), "seconds round up");
        assertEquals(50, s.retryBudgetPercent());
        assertEquals(0, s.retryBudgetMinPerSecond());
        assertEquals(Path.of("/var/lib/megallm/state.json"), s.keyStateFile());
        assertTrue(s.summary().contains("key_recheck=0s"), s.summary());
        assertEquals(60.0, s.clientHeaderTimeoutSeconds());
        assertEquals(60.0, s.clientBodyTimeoutSeconds());
        assertEquals(75.0, s.keepaliveTimeoutSeconds());
        assertEquals(60.0, s.sendTimeoutSeconds());
        assertEquals(20_000, s.maxConnections());
        assertEquals(new ClientSettings(60_000, 60_000, 75_000, 60_000, 20_000), s.clientSettings());
    }

    @Test
    void environmentOverridesEveryDefault() throws Exception {
        Map<String, String> env = new HashMap<>();
        env.put("MEGALLM_BASE_URL", "http://upstream.internal:8081/api/v1");
        env.put("MEGALLM_TIMEOUT", "2.5");
        env.put("MEGALLM_MAX_RETRIES", "0");
        env.put("MAX_KEY_RETRIES", "7");
        env.put("HOST", "127.0.0.1");
        env.put("PORT", "9000");
        env.put("LOG_LEVEL", "DEBUG");
        env.put("KEYS_FILE", "secrets/pool.txt");
        env.put("LOG_DIR", "/var/log/megallm");
        env.put("HTTP_POOL_MAXSIZE", "50");
        env.put("HTTP_POOL_CONNECTIONS", "0");
        env.put("MAX_REQUEST_BODY", "2m");
        env.put("KEY_COOLDOWN", "15");
        env.put("ADMIN_TOKEN", ADMIN_TOKEN);
        env.put("PROXY_API_KEYS", " ck-one , ck-two,,");
        env.put("SHUTDOWN_GRACE", "0");
        env.put("ACCESS_LOG_CONSOLE", "false");
        env.put("ACCESS_LOG_CONSOLE_RATE", "0");
        env.put("CLIENT_HEADER_TIMEOUT", "5");
        env.put("CLIENT_BODY_TIMEOUT", "0.5");
        env.put("KEEPALIVE_TIMEOUT", "30");
        env.put("SEND_TIMEOUT", "12");
        env.put("MAX_CONNECTIONS", "100");
        Settings s = load(env);
        assertEquals("http://upstream.internal:8081/api/v1", s.baseUrl());
        assertEquals(2.5, s.timeoutSeconds());
        assertEquals(2_500L, s.timeoutMillis());
        assertEquals(0, s.maxRetries());
        assertEquals(7, s.maxKeyRetries());
        assertEquals("127.0.0.1", s.host());
        assertEquals(9000, s.port());
        assertEquals("DEBUG", s.logLevel());
        assertEquals(dir.resolve("secrets/pool.txt"), s.keysFile());
        assertEquals(Path.of("/var/log/megallm"), s.logDir());
        assertEquals(50, s.poolMaxSize());
        assertEquals(0, s.poolConnections());
        assertEquals(2L * 1024 * 1024, s.maxRequestBody());
        assertEquals(15L, s.keyCooldownSeconds());
        assertEquals(ADMIN_TOKEN, s.adminToken());
        assertEquals(List.of("ck-one", "ck-two"), s.proxyApiKeys());
        assertEquals(0L, s.shutdownGraceSeconds());
        assertFalse(s.accessLogConsole());
        assertEquals(0, s.accessLogConsoleRate());
        assertEquals(new ClientSettings(5_000, 500, 30_000, 12_000, 100), s.clientSettings());
    }

    @Test
    void unrelatedEnvironmentVariablesAreIgnored() throws Exception {
        Settings s = load(Map.of("PATH", "/usr/bin:/bin", "HOME", "/root", "JAVA_TOOL_OPTIONS", "${oops",
                "port", "1234"));
        assertEquals(8000, s.port());
    }

    @Test
    void applicationConfOverridesDefaultsAndEnvironmentOverridesIt() throws Exception {
        write("config/application.conf", """
                # operator's file
                PORT = 9001
                MEGALLM_TIMEOUT = 5
                LOG_LEVEL = "debug"
                MAX_REQUEST_BODY = 1k
                KEY_COOLDOWN = 90
                """);
        Settings fromFile = load(Map.of());
        assertEquals(9001, fromFile.port());
        assertEquals(5.0, fromFile.timeoutSeconds());
        assertEquals("DEBUG", fromFile.logLevel());
        assertEquals(1024L, fromFile.maxRequestBody());
        assertEquals(90L, fromFile.keyCooldownSeconds());
        assertEquals(3, fromFile.maxRetries(), "what the file does not set keeps its default");

        Settings withEnv = load(Map.of("PORT", "9002", "LOG_LEVEL", "ERROR"));
        assertEquals(9002, withEnv.port());
        assertEquals("ERROR", withEnv.logLevel());
        assertEquals(5.0, withEnv.timeoutSeconds(), "the file still applies where the environment is silent");
    }

    @Test
    void unknownNamesInTheConfigFileAreOneWarningEachNamingTheClosestSetting() throws Exception {
        // They were ignored without a word: the proxy ran with timeout 120 and 3 key retries.
        write("config/application.conf", """
                # operator's file
                MEGALLM_TIMOUT = 5
                max_key_retries = 9
                PORT = 9001
                log_level = "debug"
                RETRY_BUDGT_MINN = 4
                FAVOURITE_COLOUR = blue
                https_proxy = "http://proxy.internal:3128"
                "sk-mega-pasted-here-0123456789abcdef" = 1
                """);
        Settings s = load(Map.of("MEGALLM_TIMOUT", "7", "SOME_OTHER_TOOL_SETTING", "x"));
        String file = dir.resolve("config/application.conf").toString();
        assertEquals(List.of(
                file + " line 2: unknown setting MEGALLM_TIMOUT is ignored (did you mean MEGALLM_TIMEOUT?)",
                file + " line 3: unknown setting max_key_retries is ignored (did you mean MAX_KEY_RETRIES?)",
                file + " line 5: unknown setting log_level is ignored (did you mean LOG_LEVEL?)",
                file + " line 6: unknown setting RETRY_BUDGT_MINN is ignored (did you mean RETRY_BUDGET_MIN?)",
                file + " line 7: unknown setting FAVOURITE_COLOUR is ignored",
                file + " line 8: https_proxy is ignored here: it is read from the environment (or .env) only",
                file + " line 9: a name that is no setting is ignored (not shown: it does not look like one)"),
                s.fileWarnings());
        assertEquals(120.0, s.timeoutSeconds(), "still ignored: only said");
        assertEquals(3, s.maxKeyRetries());
        assertEquals(9001, s.port());
    }

    /** Audit (2026-12-07): ADMIN_TOKEN = longSecretPart#Rest was the token "longSecretPart", without a word. */
    @Test
    void anUnquotedValueThatHoconCutsAtAHashOrDoubleSlashIsWarnedAbout() throws Exception {
        write("config/application.conf", """
                ADMIN_TOKEN = longSecretPart#Rest
                LOG_DIR = logs//x
                PORT = 9001   # a comment the operator meant
                DEFAULT_MODEL = "gpt#4"
                KEY_COOLDOWN = 90// glued
                """);
        Settings s = load(Map.of());
        String file = dir.resolve("config/application.conf").toString();
        assertEquals(List.of(
                file + " line 1: the value of ADMIN_TOKEN is cut at its first # (HOCON reads the rest of the line as a"
                        + " comment); put the value in double quotes",
                file + " line 2: the value of LOG_DIR is cut at its first // (HOCON reads the rest of the line"
                        + " as a comment); put the value in double quotes",
                file + " line 5: the value of KEY_COOLDOWN is cut at its first // (HOCON reads the rest of the line as"
                        + " a comment); put the value in double quotes"),
                s.fileWarnings());
        for (String w : s.fileWarnings()) {
            assertFalse(w.contains("longSecretPart") || w.contains("Rest"), "a value in a warning: " + w);
        }
    }

    @Test
    void knownNamesTheShippedFileAndTheEnvironmentGiveNoWarning() throws Exception {
        assertEquals(List.of(), load(Map.of("PATH", "/usr/bin", "MEGALLM_TIMOUT", "5", "max_key_retries", "9"))
                .fileWarnings(), "no file: nothing to warn about, whatever the environment holds");
        StringBuilder every = new StringBuilder();
        for (String name : ConfigLoader.NAMES) {
            every.append(name).append(" = \"1\"\n");
        }
        write("etc/all.conf", every.toString());
        assertEquals(List.of(), ConfigLoader.unknownNames(com.typesafe.config.ConfigFactory.parseFile(
                dir.resolve("etc/all.conf").toFile()), dir.resolve("etc/all.conf")));
        // The file the repository ships (every setting, commented out), uncommented.
        Path root = Path.of("").toAbsolutePath();
        while (!Files.isRegularFile(root.resolve("config/application.conf")) || !Files.isDirectory(root.resolve("proxy-server"))) {
            root = root.getParent();
            assertNotNull(root, "no repository root above the working directory");
        }
        Path shipped = root.resolve("config/application.conf");
        String text = Files.readString(shipped).lines().map(l -> l.replaceFirst("^#\\s*(?=[A-Z_]+\\s*=)", ""))
                .collect(java.util.stream.Collectors.joining("\n"));
        assertTrue(text.lines().anyMatch(l -> l.startsWith("MEGALLM_TIMEOUT")), text);
        assertEquals(List.of(), ConfigLoader.unknownNames(com.typesafe.config.ConfigFactory.parseString(text), shipped));
    }

    @Test
    void configFilePointsElsewhereAndReplacesTheDefaultFile() throws Exception {
        write("config/application.conf", "PORT = 9001\nKEY_COOLDOWN = 90\n");
        write("etc/proxy.conf", "PORT = 9100\nMAX_KEY_RETRIES = 9\n");
        Settings s = load(Map.of("CONFIG_FILE", "etc/proxy.conf"));
        assertEquals(9100, s.port());
        assertEquals(9, s.maxKeyRetries());
        assertEquals(60L, s.keyCooldownSeconds(), "config/application.conf is not read when CONFIG_FILE is set");

        Settings absolute = load(Map.of("CONFIG_FILE", dir.resolve("etc/proxy.conf").toAbsolutePath().toString(),
                "PORT", "9200"));
        assertEquals(9200, absolute.port(), "the environment still overrides CONFIG_FILE's values");
        assertEquals(9, absolute.maxKeyRetries());
    }

    @Test
    void configFileThatDoesNotExistStopsTheStart() {
        ConfigError e = rejected(Map.of("CONFIG_FILE", "etc/missing.conf"));
        assertTrue(e.getMessage().contains("CONFIG_FILE"), e.getMessage());
        assertTrue(e.getMessage().contains("etc/missing.conf"), e.getMessage());
    }

    @Test
    void aConfigFileSyntaxErrorNeverEchoesTheTextItStumbledOn() throws Exception {
        // A forgotten '=' makes HOCON read the setting and its value as one key, which its
        // message quotes; so does a pool key pasted into the wrong file.
        String poolKey = "sk-mega-pasted-into-the-config-0123456789";
        for (String text : new String[] {"ADMIN_TOKEN " + ADMIN_TOKEN + "\n", "PORT = 9001\n" + poolKey + "\n",
                "PORT = 9001\n" + poolKey + "\n" + poolKey + "x\n"}) {
            write("config/application.conf", text);
            ConfigError e = rejected(Map.of());
            assertTrue(e.getMessage().contains("application.conf"), e.getMessage());
            assertFalse(e.getMessage().contains(ADMIN_TOKEN), e.getMessage());
            assertFalse(e.getMessage().contains(poolKey), e.getMessage());
        }
    }

    @Test
    void aListWhereOneValueBelongsStopsTheStartInsteadOfBecomingItsText() throws Exception {
        // HOCON invites a list; its text "[ck-one, ck-two]" split at the comma made the client keys
        // "[ck-one" and "ck-two]", so that neither client could authenticate.
        write("config/application.conf", "PROXY_API_KEYS = [\"ck-one\", \"ck-two\"]\n");
        ConfigError e = rejected(Map.of());
        assertTrue(e.getMessage().startsWith("PROXY_API_KEYS="), e.getMessage());
        assertFalse(e.getMessage().contains("ck-one"), e.getMessage());
        write("config/application.conf", "DEFAULT_MODEL { name = gpt-4o }\n");
        assertTrue(rejected(Map.of()).getMessage().startsWith("DEFAULT_MODEL="));
    }

    @Test
    void anAdminTokenNoHeaderCanCarryStopsTheStart() throws Exception {
        // Header bytes are read one char per byte: a token with "é" or "€" never equals what curl
        // (UTF-8) or a browser can send, and the admin routes were shut to everyone, without a word.
        for (String token : new String[] {"admin-t\u00f6ken-value", "admin-\u20ac-token", "admin\ttoken"}) {
            ConfigError e = rejected(Map.of("ADMIN_TOKEN", token));
            assertTrue(e.getMessage().startsWith("ADMIN_TOKEN=(hidden)"), e.getMessage());
        }
        assertEquals("admin token with spaces", load(Map.of("ADMIN_TOKEN", "admin token with spaces")).adminToken());
    }

    @Test
    void aPlainClientKeyNoHeaderCanCarryStopsTheStartAsTheClientFileSkipsIt() throws Exception {
        ConfigError e = rejected(Map.of("PROXY_API_KEYS", "ck-plain-one,ck-cl\u00e9-two"));
        assertTrue(e.getMessage().startsWith("PROXY_API_KEYS=(hidden)"), e.getMessage());
        assertFalse(e.getMessage().contains("ck-"), e.getMessage());
    }

    @Test
    void configFileThatIsADirectoryStopsTheStart() throws Exception {
        Files.createDirectories(dir.resolve("etc/conf.d"));
        ConfigError e = rejected(Map.of("CONFIG_FILE", "etc/conf.d"));
        assertTrue(e.getMessage().contains("CONFIG_FILE"), e.getMessage());
    }

    @Test
    void configFileThatIsNotHoconStopsTheStartWithOneLineAndNoSecret() throws Exception {
        write("config/application.conf", "ADMIN_TOKEN = \"" + ADMIN_TOKEN + "\"\nPORT = {{{ 9001\n");
        ConfigError e = rejected(Map.of());
        assertTrue(e.getMessage().contains("application.conf"), e.getMessage());
        assertFalse(e.getMessage().contains(ADMIN_TOKEN), e.getMessage());
    }

    @Test
    void dotEnvSuppliesWhatTheEnvironmentDoesNotSetAndNeverOverridesIt() throws Exception {
        write(".env", """
                # local settings
                export PORT=9100
                LOG_LEVEL="warning"
                KEY_COOLDOWN=15 # seconds
                MEGALLM_TIMEOUT='30'
                MAX_KEY_RETRIES=5
                not a variable line
                """);
        Settings s = load(Map.of("MAX_KEY_RETRIES", "1"));
        assertEquals(9100, s.port());
        assertEquals("WARN", s.logLevel());
        assertEquals(15L, s.keyCooldownSeconds());
        assertEquals(30.0, s.timeoutSeconds());
        assertEquals(1, s.maxKeyRetries(), ".env must not override a variable that is set");
    }

    @Test
    void aDotEnvSavedWithAByteOrderMarkKeepsItsFirstVariable() throws Exception {
        // Notepad saves UTF-8 with a BOM; the first name must not become "\uFEFFPROXY_API_KEYS".
        write(".env", "\uFEFFPROXY_API_KEYS=ck-first-line\r\nPORT=9100\r\n");
        Settings s = load(Map.of());
        assertEquals(List.of("ck-first-line"), s.proxyApiKeys(), "the first line is a setting like the others");
        assertEquals(9100, s.port());
    }

    @Test
    void aQuotedDotEnvValueWithACommentAfterItLosesItsQuotes() throws Exception {
        write(".env", """
                ADMIN_TOKEN="%s" # for the dashboard
                MEGALLM_BASE_URL='http://upstream.internal:8081/v1'   # staging
                """.formatted(ADMIN_TOKEN));
        Settings s = load(Map.of());
        assertEquals(ADMIN_TOKEN, s.adminToken());
        assertEquals("http://upstream.internal:8081/v1", s.baseUrl());
    }

    @Test
    void dotEnvOverridesTheConfigFileBecauseItActsAsEnvironment() throws Exception {
        write("config/application.conf", "PORT = 9001\n");
        write(".env", "PORT=9100\n");
        assertEquals(9100, load(Map.of()).port());
    }

    @Test
    void dotEnvCanNameTheConfigFile() throws Exception {
        write("etc/proxy.conf", "PORT = 9300\n");
        write(".env", "CONFIG_FILE=etc/proxy.conf\n");
        assertEquals(9300, load(Map.of()).port());
    }

    @ParameterizedTest
    @CsvSource({"1k,1024", "10m,10485760", "1048576,1048576", "512K,524288", "1g,1073741824"})
    void maxRequestBodyIsAHoconSize(String value, long bytes) throws Exception {
        assertEquals(bytes, load(Map.of("MAX_REQUEST_BODY", value)).maxRequestBody());
    }

    @ParameterizedTest
    @CsvSource({"WARNING,WARN", "warning,WARN", "WARN,WARN", "debug,DEBUG", "Info,INFO", "ERROR,ERROR",
            "' error ',ERROR"})
    void logLevelIsNormalised(String value, String expected) throws Exception {
        assertEquals(expected, load(Map.of("LOG_LEVEL", value)).logLevel());
    }

    // ---- bad values ------------------------------------------------------------------------------

    @Test
    void aDefaultModelWithAControlCharacterIsRefusedNamingTheVariable() {
        ConfigError e = rejected(Map.of("DEFAULT_MODEL", "gpt\u0001x", "ADMIN_TOKEN", ADMIN_TOKEN));
        assertTrue(e.getMessage().startsWith("DEFAULT_MODEL="), e.getMessage());
    }

    @Test
    void defaultModelIsUnsetByDefaultAndTakenAsGiven() throws Exception {
        assertEquals(null, load(Map.of()).defaultModel());
        assertEquals("gpt-4o-mini", load(Map.of("DEFAULT_MODEL", " gpt-4o-mini ")).defaultModel());
    }

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource(delimiter = '|', value = {
            "MEGALLM_TIMEOUT|abc",
            "MEGALLM_TIMEOUT|-1",
            "MEGALLM_TIMEOUT|0",
            "MEGALLM_TIMEOUT|NaN",
            "PORT|70000",
            "PORT|x",
            "PORT|-1",
            "PORT|80.5",
            "MEGALLM_MAX_RETRIES|-1",
            "MAX_KEY_RETRIES|three",
            "LOG_LEVEL|LOUD",
            "MEGALLM_BASE_URL|ftp://x",
            "MEGALLM_BASE_URL|not a url",
            "MEGALLM_BASE_URL|https://a.example/v1,,https://b.example/v1",
            "MEGALLM_BASE_URL|https://a.example/v1,ftp://b",
            "MEGALLM_BASE_URL|http://",
            "MEGALLM_BASE_URL|https://a.example/v1,https://a.example/v1",
            "MEGALLM_BASE_URL|https://a.example/v1,https://b.example/v1,HTTPS://a.example/v1/",
            "MAX_REQUEST_BODY|lots",
            "MAX_REQUEST_BODY|0",
            "KEY_COOLDOWN|-5",
            "KEY_COOLDOWN|soon",
            "HTTP_POOL_MAXSIZE|0",
            "HTTP_POOL_CONNECTIONS|-3",
            "SHUTDOWN_GRACE|-1",
            "ACCESS_LOG_CONSOLE|maybe",
            "ACCESS_LOG_CONSOLE_RATE|-1",
            "ACCESS_LOG_CONSOLE_RATE|lots",
            "KEY_RECHECK|-1",
            "KEY_RECHECK|later",
            "KEY_WAIT|-2",
            "RETRY_BUDGET|-5",
            "RETRY_BUDGET|20%",
            "RETRY_BUDGET_MIN|-1",
            "RETRY_BUDGET_MIN|ten",
            "CLIENT_HEADER_TIMEOUT|0",
            "CLIENT_HEADER_TIMEOUT|soon",
            "CLIENT_BODY_TIMEOUT|-1",
            "KEEPALIVE_TIMEOUT|never",
            "SEND_TIMEOUT|0",
            "MAX_CONNECTIONS|0",
            "MAX_CONNECTIONS|many",
    })
    void badValueGivesOneLineNamingTheVariableAndTheValue(String name, String value) {
        ConfigError e = rejected(Map.of(name, value, "ADMIN_TOKEN", ADMIN_TOKEN));
        String m = e.getMessage();
        assertTrue(m.contains(name), "message does not name " + name + ": " + m);
        assertTrue(m.contains(value), "message does not show the value " + value + ": " + m);
        assertFalse(m.contains(ADMIN_TOKEN), "the admin token leaked: " + m);
        assertFalse(m.contains("Exception"), m);
    }

    @Test
    void badValueFromTheConfigFileIsNamedToo() throws Exception {
        write("config/application.conf", "MEGALLM_TIMEOUT = \"abc\"\n");
        ConfigError e = rejected(Map.of());
        assertTrue(e.getMessage().contains("MEGALLM_TIMEOUT"), e.getMessage());
        assertTrue(e.getMessage().contains("abc"), e.getMessage());
    }

    @Test
    void emptyHostOrKeysFileIsRejected() {
        assertTrue(rejected(Map.of("HOST", "  ")).getMessage().contains("HOST"));
        assertTrue(rejected(Map.of("KEYS_FILE", "")).getMessage().contains("KEYS_FILE"));
        assertTrue(rejected(Map.of("LOG_DIR", " ")).getMessage().contains("LOG_DIR"));
        assertTrue(rejected(Map.of("KEY_STATE_FILE", " ")).getMessage().contains("KEY_STATE_FILE"));
    }

    @Test
    void aValueWithLineBreaksStillGivesOneLine() {
        ConfigError timeout = rejected(Map.of("MEGALLM_TIMEOUT", "12\nabc"));
        assertTrue(timeout.getMessage().contains("MEGALLM_TIMEOUT"), timeout.getMessage());
        ConfigError url = rejected(Map.of("MEGALLM_BASE_URL", "http://host\r\n/v1"));
        assertTrue(url.getMessage().contains("MEGALLM_BASE_URL"), url.getMessage());
    }

    /** Audit (2026-12-07): a refused base URL was echoed whole, with its password or api_key query. */
    @Test
    void aRefusedBaseUrlIsShownWithoutItsCredentialsOrQuery() {
        ConfigError user = rejected(Map.of("MEGALLM_BASE_URL", "https://bob:PassWordSecret123@ai.example/v1"));
        assertFalse(user.getMessage().contains("PassWordSecret123"), user.getMessage());
        assertFalse(user.getMessage().contains("bob"), user.getMessage());
        assertTrue(user.getMessage().contains("https://***@ai.example/v1"), user.getMessage());
        ConfigError query = rejected(Map.of("MEGALLM_BASE_URL",
                "http://127.0.0.1:9/v1,https://ai.example/v1?api_key=QuerySecret456#frag"));
        assertFalse(query.getMessage().contains("QuerySecret456"), query.getMessage());
        assertTrue(query.getMessage().contains("http://127.0.0.1:9/v1,https://ai.example/v1?***"), query.getMessage());
        assertOneLine(query);
    }

    @Test
    void aVeryLongBadValueIsShortenedInTheMessage() {
        String value = "x".repeat(5000);
        ConfigError e = rejected(Map.of("PORT", value));
        assertTrue(e.getMessage().contains("PORT"), e.getMessage());
        assertTrue(e.getMessage().length() < 1000, "message of " + e.getMessage().length() + " characters");
    }

    @Test
    void aStructuredValueInTheConfigFileIsRejected() throws Exception {
        write("config/application.conf", "PORT = [8000, 8001]\n");
        ConfigError e = rejected(Map.of());
        assertTrue(e.getMessage().contains("PORT"), e.getMessage());
    }

    @Test
    void blankSecretsCountAsUnset() throws Exception {
        Settings s = load(Map.of("ADMIN_TOKEN", "   ", "PROXY_API_KEYS", " "));
        assertNull(s.adminToken(), "a blank ADMIN_TOKEN must not become an empty bearer token");
        assertEquals(List.of(), s.proxyApiKeys());
    }

    @Test
    void clientKeysOfOnlyCommasAndBlanksStopTheStartInsteadOfOpeningTheProxy() throws Exception {
        // What Compose makes of PROXY_API_KEYS=${K1},${K2} when both are missing.
        for (String value : List.of(",", ", ,", " ,,\t, ")) {
            ConfigError e = rejected(Map.of("PROXY_API_KEYS", value));
            assertTrue(e.getMessage().startsWith("PROXY_API_KEYS is set but holds no key"), e.getMessage());
        }
        ConfigError e = rejected(Map.of("PROXY_API_KEYS", ",", "ADMIN_TOKEN", ADMIN_TOKEN));
        assertFalse(e.getMessage().contains(ADMIN_TOKEN), e.getMessage());
        assertEquals(List.of("ck-only"), load(Map.of("PROXY_API_KEYS", ",ck-only,")).proxyApiKeys());
        assertEquals(List.of(), load(Map.of("PROXY_API_KEYS", "")).proxyApiKeys(), "empty is still unset");
    }

    // ---- secrets -----------------------------------------------------------------------------------

    @Test
    void summaryNamesEverySettingButNeverTheSecrets() throws Exception {
        Settings s = load(Map.of("ADMIN_TOKEN", ADMIN_TOKEN, "PROXY_API_KEYS", "ck-client-one,ck-client-two"));
        String summary = s.summary();
        assertFalse(summary.contains(ADMIN_TOKEN), summary);
        assertFalse(summary.contains("ck-client-one"), summary);
        assertFalse(summary.contains("ck-client-two"), summary);
        assertTrue(summary.contains("admin_token=set"), summary);
        assertTrue(summary.contains("base_url=https://ai.megallm.io/v1"), summary);
        assertTrue(summary.contains("client_header_timeout=60.0s") && summary.contains("client_body_timeout=60.0s")
                && summary.contains("keepalive_timeout=75.0s") && summary.contains("send_timeout=60.0s")
                && summary.contains("max_connections=20000"), summary);
        assertFalse(summary.contains("\n"), summary);

        String unset = load(Map.of()).summary();
        assertTrue(unset.contains("admin_token=unset"), unset);
        assertTrue(unset.contains("proxy_api_keys=unset"), unset);
    }

    @Test
    void adminTokenFromEveryLayerNeverAppearsInErrors() throws Exception {
        write("config/application.conf", "ADMIN_TOKEN = \"" + ADMIN_TOKEN + "\"\nPORT = 99999\n");
        ConfigError fromFile = rejected(Map.of());
        assertTrue(fromFile.getMessage().contains("PORT"), fromFile.getMessage());
        assertFalse(fromFile.getMessage().contains(ADMIN_TOKEN), fromFile.getMessage());

        write(".env", "ADMIN_TOKEN=" + ADMIN_TOKEN + "\nLOG_LEVEL=LOUD\n");
        ConfigError fromDotEnv = rejected(Map.of("PORT", "8000"));
        assertTrue(fromDotEnv.getMessage().contains("LOG_LEVEL"), fromDotEnv.getMessage());
        assertFalse(fromDotEnv.getMessage().contains(ADMIN_TOKEN), fromDotEnv.getMessage());

        Settings ok = load(Map.of("PORT", "8000", "LOG_LEVEL", "INFO"));
        assertEquals(ADMIN_TOKEN, ok.adminToken());
        assertFalse(ok.summary().contains(ADMIN_TOKEN));
    }

    // ---- REDIS_URL (§3, §14) ---------------------------------------------------------------------

    @Test
    void redisUrlIsUnsetByDefaultAndTheSummarySaysSo() throws Exception {
        Settings s = load(Map.of());
        assertNull(s.redisUrl());
        assertEquals("default", s.redisPool());
        assertTrue(s.summary().contains("redis_url=unset"), s.summary());
    }

    @Test
    void redisUrlWithPasswordTlsAndDatabaseIsTakenAndItsPasswordMasked() throws Exception {
        Settings s = load(Map.of("REDIS_URL", "rediss://:p4ssw0rd-redis@cache.internal:6380/2", "REDIS_POOL", "team-a"));
        assertTrue(s.redisUrl().tls());
        assertEquals("cache.internal", s.redisUrl().host());
        assertEquals(6380, s.redisUrl().port());
        assertEquals(2, s.redisUrl().database());
        assertEquals("team-a", s.redisPool());
        assertEquals("rediss://***@cache.internal:6380/2", s.redisUrl().masked());
        assertFalse(s.summary().contains("p4ssw0rd-redis"), s.summary());
        assertFalse(s.toString().contains("p4ssw0rd-redis"));
        assertTrue(s.summary().contains("redis_url=rediss://***@cache.internal:6380/2"), s.summary());
        assertEquals(6379, load(Map.of("REDIS_URL", "redis://localhost")).redisUrl().port());
        // An empty password (the scale compose file's unset REDIS_PASSWORD) is none, not "***".
        RedisUrl empty = load(Map.of("REDIS_URL", "redis://:@127.0.0.1:6379")).redisUrl();
        assertEquals("redis://127.0.0.1:6379", empty.masked());
        assertEquals("redis://127.0.0.1:6379", empty.value());
    }

    @ParameterizedTest
    @ValueSource(strings = {"localhost:6379", "http://:p4ssw0rd-redis@host:6379", "redis://:p4ssw0rd-redis@:6379",
            "redis://:p4ssw0rd-redis@host:6379/zero", "redis://:p4ssw0rd-redis@host:99999", "redis://host:6379/0?x=1"})
    void aMalformedRedisUrlStopsTheStartWithOneLineAndNoPassword(String value) {
        ConfigError e = rejected(Map.of("REDIS_URL", value));
        assertTrue(e.getMessage().startsWith("REDIS_URL="), e.getMessage());
        assertFalse(e.getMessage().contains("p4ssw0rd-redis"), e.getMessage());
    }

    @Test
    void aRedisPoolThatCannotBeAKeyPartIsRefused() {
        ConfigError e = rejected(Map.of("REDIS_POOL", "a b}"));
        assertTrue(e.getMessage().startsWith("REDIS_POOL="), e.getMessage());
    }

    @Test
    void aRedisCaFileIsForTlsOnlyAndMustBeReadable() throws Exception {
        java.nio.file.Files.writeString(dir.resolve("redis-ca.pem"), "-----BEGIN CERTIFICATE-----\n");
        Settings s = load(Map.of("REDIS_URL", "rediss://:p4ssw0rd-redis@cache:6380", "REDIS_CA_FILE", "redis-ca.pem"));
        assertEquals(dir.resolve("redis-ca.pem"), s.redisUrl().caFile());
        assertTrue(s.summary().contains("redis_ca_file="), s.summary());
        ConfigError plain = rejected(Map.of("REDIS_URL", "redis://cache:6379", "REDIS_CA_FILE", "redis-ca.pem"));
        assertTrue(plain.getMessage().startsWith("REDIS_CA_FILE=") && plain.getMessage().contains("rediss://"),
                plain.getMessage());
        ConfigError missing = rejected(Map.of("REDIS_URL", "rediss://cache:6380", "REDIS_CA_FILE", "nowhere.pem"));
        assertTrue(missing.getMessage().contains("cannot be read"), missing.getMessage());
    }

    @Test
    void aClientFileThatIsNotAClientListStopsTheStartNamingTheFileNotItsContent() throws Exception {
        write("bin.txt", "ck-secret-client-000000001\u0000\u0001garbage\n");
        ConfigError binary = rejected(Map.of("PROXY_API_KEYS", "@bin.txt"));
        assertTrue(binary.getMessage().contains("is not text (it holds NUL bytes)"), binary.getMessage());
        write("wrong.txt", "this is not\nthe client file at all\nck-secret-client-000000002\n");
        ConfigError wrong = rejected(Map.of("PROXY_API_KEYS", "@wrong.txt"));
        assertTrue(wrong.getMessage().contains("is not a client list: 2 of its lines are not clients and 1 are"),
                wrong.getMessage());
        write("armoured.txt", "-----BEGIN PGP MESSAGE-----\n\njA0ECQMCabc\n-----END PGP MESSAGE-----\n");
        ConfigError armoured = rejected(Map.of("PROXY_API_KEYS", "@armoured.txt"));
        assertTrue(armoured.getMessage().contains("armoured (OpenPGP)"), armoured.getMessage());
        Files.createDirectories(dir.resolve("clients.d"));
        ConfigError directory = rejected(Map.of("PROXY_API_KEYS", "@clients.d"));
        assertTrue(directory.getMessage().contains("is a directory"), directory.getMessage());
        for (ConfigError e : List.of(binary, wrong, armoured, directory)) {
            assertTrue(e.getMessage().startsWith("PROXY_API_KEYS: the client file "), e.getMessage());
            assertFalse(e.getMessage().contains("ck-secret"), e.getMessage());
        }
        // A typo or two among clients is still a client file: the good lines count.
        write("typo.txt", "ck-secret-client-000000003 name=a\nck-secret-client-000000004 rpm=ten\nck-secret-client-000000005\n");
        assertEquals(2, load(Map.of("PROXY_API_KEYS", "@typo.txt")).proxyApiKeys().size());
    }

    @Test
    void aClientFileOver16MebibytesIsNotRead() throws Exception {
        // Read whole and parsed, a file is held about three times over: 64 MiB took a 128 MB heap.
        StringBuilder big = new StringBuilder(17 << 20);
        while (big.length() <= 16 << 20) {
            big.append("# a comment line that pads the file to more than sixteen mebibytes ......\n");
        }
        write("big.txt", "ck-secret-client-000000009\n" + big);
        ConfigError e = rejected(Map.of("PROXY_API_KEYS", "@big.txt"));
        assertTrue(e.getMessage().contains("is larger than 16 MiB"), e.getMessage());
    }

    @Test
    void aDeviceGivenAsTheClientFileIsRefusedNotReadForever() {
        // /dev/zero reports size 0 and never ends: read whole, it would take the heap.
        ConfigError e = rejected(Map.of("PROXY_API_KEYS", "@/dev/zero"));
        assertTrue(e.getMessage().contains("is not a regular file"), e.getMessage());
    }
}
