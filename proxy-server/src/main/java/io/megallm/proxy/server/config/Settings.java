package io.megallm.proxy.server.config;

import io.megallm.proxy.http.ClientSettings;

import io.megallm.proxy.upstream.EgressProxy;

import java.nio.file.Path;
import java.util.List;

/**
 * The validated configuration of one proxy process (contract §3). {@code fileWarnings}: one line
 * for each name in the config file that is no setting, to be logged once logging has started.
 */
public record Settings(
        String baseUrl,
        double timeoutSeconds,
        int maxRetries,
        int maxKeyRetries,
        String host,
        int port,
        String logLevel,
        Path keysFile,
        Path logDir,
        int poolMaxSize,
        int poolConnections,
        long maxRequestBody,
        long keyCooldownSeconds,
        String adminToken,
        List<String> proxyApiKeys,
        Path clientsFile,
        long shutdownGraceSeconds,
        boolean accessLogConsole,
        int accessLogConsoleRate,
        double clientHeaderTimeoutSeconds,
        double clientBodyTimeoutSeconds,
        double keepaliveTimeoutSeconds,
        double sendTimeoutSeconds,
        int maxConnections,
        String defaultModel,
        long keyRecheckSeconds,
        long keyWaitSeconds,
        int retryBudgetPercent,
        int retryBudgetMinPerSecond,
        Path keyStateFile,
        List<EgressProxy> egressProxies,
        RedisUrl redisUrl,
        String redisPool,
        List<String> fileWarnings) {

    public long timeoutMillis() {
        return millis(timeoutSeconds);
    }

    /** What the client connections may cost, for the core. */
    public ClientSettings clientSettings() {
        return new ClientSettings(millis(clientHeaderTimeoutSeconds), millis(clientBodyTimeoutSeconds),
                millis(keepaliveTimeoutSeconds), millis(sendTimeoutSeconds), maxConnections);
    }

    private static long millis(double seconds) {
        return Math.max(1L, Math.round(seconds * 1000.0));
    }

    /** The base URLs of MEGALLM_BASE_URL, in order of preference. */
    public List<String> baseUrls() {
        return java.util.Arrays.stream(baseUrl.split(",")).map(String::strip).toList();
    }

    /** The outbound proxy of each base URL (null: direct), masked in text. */
    private String egressText() {
        if (egressProxies.size() == 1) {
            return egressProxies.get(0) == null ? "none" : egressProxies.get(0).toString();
        }
        return egressProxies.stream().map(e -> e == null ? "none" : e.toString()).toList().toString();
    }

    /** Never the record's default, which would print the secrets. */
    @Override
    public String toString() {
        return "Settings[" + summary() + "]";
    }

    /** A line for the start log: every setting, secrets reduced to whether they are set. */
    public String summary() {
        return "base_url=" + baseUrl
                + " timeout=" + timeoutSeconds + "s"
                + " max_retries=" + maxRetries
                + " max_key_retries=" + maxKeyRetries
                + " listen=" + host + ":" + port
                + " log_level=" + logLevel
                + " keys_file=" + keysFile
                + " log_dir=" + logDir
                + " pool_maxsize=" + poolMaxSize
                + " pool_connections=" + poolConnections
                + " max_request_body=" + maxRequestBody
                + " key_cooldown=" + keyCooldownSeconds + "s"
                + " admin_token=" + (adminToken == null ? "unset" : "set")
                + " proxy_api_keys=" + (proxyApiKeys.isEmpty() ? "unset" : proxyApiKeys.size() + " configured")
                + " shutdown_grace=" + shutdownGraceSeconds + "s"
                + " access_log_console=" + accessLogConsole
                + " access_log_console_rate=" + accessLogConsoleRate + "/s"
                + " client_header_timeout=" + clientHeaderTimeoutSeconds + "s"
                + " client_body_timeout=" + clientBodyTimeoutSeconds + "s"
                + " keepalive_timeout=" + keepaliveTimeoutSeconds + "s"
                + " send_timeout=" + sendTimeoutSeconds + "s"
                + " max_connections=" + maxConnections
                + " default_model=" + (defaultModel == null ? "unset" : defaultModel)
                + " key_recheck=" + keyRecheckSeconds + "s"
                + " key_wait=" + keyWaitSeconds + "s"
                + " retry_budget=" + retryBudgetPercent + "%+" + retryBudgetMinPerSecond + "/s"
                + " key_state_file=" + keyStateFile
                + " egress_proxy=" + egressText()
                + " redis_url=" + (redisUrl == null ? "unset" : redisUrl.masked())
                + (redisUrl == null ? "" : " redis_pool=" + redisPool)
                + (redisUrl == null || redisUrl.caFile() == null ? "" : " redis_ca_file=" + redisUrl.caFile());
    }
}
