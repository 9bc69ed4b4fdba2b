// The operator dashboard: reads /health, /admin/keys, /admin/usage and /metrics, and posts the
// two admin actions. No framework, no inline script or style (the page's CSP forbids both), and
// text only ever goes in through textContent, so nothing the proxy reports can become markup.
"use strict";

const TOKEN_KEY = "megallm-admin-token";
let previous = null; // the last metrics sample, for rates

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function call(path, method) {
  const headers = {};
  if (token()) headers["Authorization"] = "Bearer " + token();
  const r = await fetch(path, { method: method || "GET", headers, cache: "no-store" });
  if (r.status === 401 || (r.status === 403 && token() !== null)) {
    sessionStorage.removeItem(TOKEN_KEY);
    throw new NeedToken(r.status === 403 ? "That token is not valid." : "");
  }
  if (r.status === 403) throw new Error("Admin routes answer loopback clients only while ADMIN_TOKEN is unset.");
  return r;
}

class NeedToken extends Error {}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
}

function fill(id, rows, render) {
  const body = document.getElementById(id);
  body.replaceChildren();
  for (const item of rows) {
    const tr = document.createElement("tr");
    render(tr, item);
    body.appendChild(tr);
  }
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    cell(tr, "nothing yet", "muted");
    body.appendChild(tr);
  }
}

function seconds(s) {
  if (s === null || s === undefined) return null;
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  return Math.round(s / 3600) + " h";
}

function tokens(t) {
  if (!t) return null;
  return (t.prompt || 0) + " / " + (t.completion || 0);
}

function usageRows(id, rows, label) {
  fill(id, rows, (tr, u) => {
    cell(tr, label(u));
    cell(tr, u.requests, "num");
    cell(tr, u.prompt_tokens, "num");
    cell(tr, u.completion_tokens, "num");
    cell(tr, u.cached_tokens, "num");
  });
}

// Sums of the Prometheus samples of one metric whose labels pass the filter.
function metric(text, name, filter) {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== " " && rest[0] !== "{") continue;
    if (filter && !filter(rest)) continue;
    const v = parseFloat(line.slice(line.lastIndexOf(" ") + 1));
    if (!Number.isNaN(v)) sum += v;
  }
  return sum;
}

async function refresh() {
  try {
    const health = await (await fetch("/health", { cache: "no-store" })).json();
    const pill = document.getElementById("health");
    pill.textContent = health.status;
    pill.className = "pill " + health.status;
    document.getElementById("version").textContent = "v" + health.version;
    document.getElementById("available").textContent =
      health.key_stats.available + " / " + health.key_stats.total;

    const keys = await (await call("/admin/keys")).json();
    fill("keys", keys.keys, (tr, k) => {
      cell(tr, k.key);
      cell(tr, k.state.replace("_", " "), "state-" + k.state);
      cell(tr, k.failure_reason);
      cell(tr, seconds(k.state === "failed" ? k.recheck_in_s : k.cooldown_remaining_s));
      cell(tr, k.requests, "num");
      cell(tr, k.failures, "num");
      cell(tr, k.last_status, "num");
      cell(tr, tokens(k.tokens), "num");
    });

    const usageAnswer = await call("/admin/usage");
    if (usageAnswer.ok) {
      const usage = await usageAnswer.json();
      document.getElementById("since").textContent = new Date(usage.since).toLocaleString();
      usageRows("by-model", usage.by_model || [], u => u.model);
      usageRows("by-client", usage.by_client || [], u => u.name || u.client);
    }

    const text = await (await call("/metrics")).text();
    const now = Date.now();
    const sample = {
      at: now,
      requests: metric(text, "megallm_requests_total"),
      errors: metric(text, "megallm_requests_total", l => /status="5/.test(l)),
    };
    document.getElementById("streams").textContent = metric(text, "megallm_active_streams");
    if (previous) {
      const dt = (sample.at - previous.at) / 1000;
      document.getElementById("rate-requests").textContent = ((sample.requests - previous.requests) / dt).toFixed(1);
      document.getElementById("rate-errors").textContent = ((sample.errors - previous.errors) / dt).toFixed(1);
    }
    previous = sample;
    show("main");
  } catch (e) {
    if (e instanceof NeedToken) {
      document.getElementById("login-error").textContent = e.message;
      show("login");
    } else {
      document.getElementById("message").textContent = "Could not refresh: " + e.message;
    }
  }
}

function show(which) {
  document.getElementById("main").hidden = which !== "main";
  document.getElementById("login").hidden = which !== "login";
}

async function act(path, describe) {
  const message = document.getElementById("message");
  try {
    const r = await call(path, "POST");
    const body = await r.json();
    message.textContent = r.ok ? describe(body) : (body.error ? body.error.message : "failed (" + r.status + ")");
  } catch (e) {
    message.textContent = e.message;
  }
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("login").addEventListener("submit", ev => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value);
    document.getElementById("token").value = "";
    refresh();
  });
  document.getElementById("reload").addEventListener("click", () =>
    act("/admin/reload-keys", b => "Reloaded: " + b.total + " keys (" + b.added + " added, " + b.removed + " removed)."));
  document.getElementById("reset").addEventListener("click", () =>
    act("/admin/reset-failed-keys", b => "Reset " + b.reset + " keys; " + b.available + " of " + b.total + " available."));
  refresh();
  setInterval(refresh, 5000);
});
