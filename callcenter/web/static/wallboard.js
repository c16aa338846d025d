// Supervisor wallboard: queues, agents by state with timers, coaching.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const agents = new Map();
  const queues = new Map();
  const kpis = new Map();
  const calls = new Map();  // interaction -> {queue, number, agent, phase, since}
  const percent = (value) => (value == null ? "–" : `${Math.round(value * 100)} %`);
  let me = null;
  let pauseReason = "meeting";

  function showError(error) { $("error").textContent = error ? CTI.t("error", { error }) : ""; }

  function renderQueues() {
    const body = $("queues").tBodies[0];
    body.innerHTML = "";
    for (const q of [...queues.values()].sort((a, b) => a.queue.localeCompare(b.queue))) {
      const row = body.insertRow();
      row.dataset.queue = q.queue;
      const k = kpis.get(q.queue) || {};
      const values = [q.queue, q.waiting, q.ringing, q.talking, `${Math.round(q.longest_wait)} s`,
        k.offered ?? 0, percent(k.service_level), k.asa == null ? "–" : `${k.asa} s`, percent(k.abandon_rate)];
      for (const value of values) row.insertCell().textContent = value;
    }
  }

  function renderCalls() {
    const body = $("calls").tBodies[0];
    body.innerHTML = "";
    for (const [id, c] of [...calls.entries()].sort((a, b) => a[1].since - b[1].since)) {
      const row = body.insertRow();
      row.dataset.interaction = id;
      row.dataset.phase = c.phase;
      for (const value of [c.queue || "", c.number || "", c.agent || "", CTI.t(`phase.${c.phase}`)]) {
        row.insertCell().textContent = value;
      }
      const since = row.insertCell();
      since.className = "since";
      since.dataset.since = c.since || "";
      since.textContent = CTI.since(c.since);
    }
  }

  function callEvent(kind, data, at) {
    const known = calls.get(data.interaction) || { since: at };
    if (kind === "call.ringing") calls.set(data.interaction, { ...known, agent: data.agent, phase: "ringing", since: at });
    else if (kind === "call.answered") calls.set(data.interaction, { ...known, agent: data.agent, phase: "connected", since: at });
    else if (kind === "call.held") calls.set(data.interaction, { ...known, phase: "held" });
    else if (kind === "call.resumed") calls.set(data.interaction, { ...known, phase: "connected" });
    else if (kind === "call.ended" || kind === "call.cancelled") calls.delete(data.interaction);
    renderCalls();
  }

  function button(agentId, action, label) {
    const b = document.createElement("button");
    b.dataset.agent = agentId;
    b.dataset.action = action;
    b.textContent = CTI.t(label);
    b.onclick = () => perform(agentId, action);
    return b;
  }

  function renderAgents() {
    const body = $("agents").tBodies[0];
    body.innerHTML = "";
    for (const a of [...agents.values()].sort((x, y) => x.agent.localeCompare(y.agent))) {
      const row = body.insertRow();
      row.dataset.agent = a.agent;
      row.dataset.state = a.state;
      row.insertCell().textContent = `${a.name} (${a.agent})`;
      const state = row.insertCell();
      state.className = `state state-${a.state}`;
      state.textContent = CTI.t(`state.${a.state}`) + (a.reason ? ` (${CTI.label("pause", a.reason)})` : "");
      const since = row.insertCell();
      since.className = "since";
      since.dataset.since = a.since || "";
      since.textContent = CTI.since(a.since);
      const actions = row.insertCell();
      if (a.state === "on_call") {
        actions.append(button(a.agent, "listen", "wb.listen"), button(a.agent, "whisper", "wb.whisper"),
          button(a.agent, "barge", "wb.barge"));
      }
      if (a.state !== "logged_out") {
        actions.append(button(a.agent, "pause", "wb.force_pause"), button(a.agent, "logout", "wb.force_logout"));
      }
      actions.append(button(a.agent, "message", "wb.message"));
    }
  }

  async function perform(agentId, action) {
    showError("");
    try {
      if (["listen", "whisper", "barge"].includes(action)) {
        await CTI.api("POST", `/api/supervisors/${me.agent}/coach`, { agent: agentId, mode: action });
        $("notice").textContent = CTI.t("wb.coaching", { agent: agentId, mode: CTI.t(`wb.${action}`) });
      } else if (action === "pause") {
        await CTI.api("POST", `/api/agents/${agentId}/pause`, { reason: pauseReason });
      } else if (action === "logout") {
        await CTI.api("POST", `/api/agents/${agentId}/logout`);
      } else if (action === "message") {
        const text = prompt(CTI.t("wb.message_prompt", { agent: agentId }));
        if (text) await CTI.api("POST", `/api/agents/${agentId}/message`, { text });
      }
    } catch (e) { showError(e.message); }
  }

  function onEvent(msg) {
    if (msg.kind === "agent.state") { agents.set(msg.data.agent, msg.data); renderAgents(); }
    else if (msg.kind === "queue.update") { queues.set(msg.data.queue, msg.data); renderQueues(); }
    else if (msg.kind.startsWith("call.")) callEvent(msg.kind, msg.data, msg.at);
    else if (msg.kind === "queue.kpis") {
      for (const k of Object.values(msg.data.queues)) kpis.set(k.queue, k);
      renderQueues();
    }
  }

  function start() {
    me = CTI.who();
    $("login-panel").hidden = true;
    $("board").hidden = false;
    $("signout").hidden = false;
    $("who").textContent = me.login;
    CTI.connect({
      status: (s) => { $("connection").textContent = CTI.t(`conn.${s}`); $("connection").dataset.status = s; },
      welcome: (msg) => {
        if (msg.resumed) return;
        pauseReason = (msg.snapshot.pause_reasons || [pauseReason]).includes("meeting")
          ? "meeting" : (msg.snapshot.pause_reasons || [pauseReason])[0];
        agents.clear();
        queues.clear();
        for (const a of msg.snapshot.agents || []) agents.set(a.agent, a);
        for (const q of Object.values(msg.snapshot.queues || {})) queues.set(q.queue, q);
        for (const k of Object.values(msg.snapshot.kpis || {})) kpis.set(k.queue, k);
        calls.clear();
        for (const c of msg.snapshot.calls || []) {
          if (c.phase === "waiting") continue;
          calls.set(c.interaction, { queue: c.queue, number: c.caller_number, agent: c.agent,
            phase: c.phase, since: c.answered_wall || c.arrived_wall });
        }
        renderCalls();
        renderAgents();
        renderQueues();
      },
      event: onEvent,
      error: (msg) => showError(msg.message),
      unauthenticated: () => location.reload(),
    });
    setInterval(() => {
      document.querySelectorAll("td.since").forEach((cell) => {
        cell.textContent = CTI.since(Number(cell.dataset.since) || 0);
      });
    }, 1000);
  }

  $("lang").value = CTI.lang;
  CTI.translate(document);
  $("lang").onchange = () => { CTI.setLang($("lang").value); renderAgents(); };
  $("login-form").onsubmit = async (ev) => {
    ev.preventDefault();
    try {
      const who = await CTI.login($("login").value, $("password").value);
      if (who.role === "agent") { location.href = "/desktop"; return; }
      start();
    } catch (e) {
      $("login-error").textContent = CTI.t("login.failed", { error: e.message });
    }
  };
  $("signout").onclick = async () => {
    try { await CTI.api("POST", "/api/auth/logout"); } catch (e) { /* already gone */ }
    CTI.logoutLocal();
    location.reload();
  };
  if (CTI.who()) start();
})();
