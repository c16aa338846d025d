// Agent desktop: state, screen-pop, disposition, transfer, messages.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  let me = null;         // {login, role, agent}
  let agent = null;      // the agent's live view
  let call = null;       // the current screen-pop
  let link = null;
  let wrapTimer = null;
  let agentNames = {};  // agent id -> "Name (id)", from the snapshot

  function showError(error) { $("error").textContent = error ? CTI.t("error", { error }) : ""; }

  async function act(path, body) {
    showError("");
    try { return await CTI.api("POST", `/api/agents/${me.agent}/${path}`, body); }
    catch (e) { showError(e.message); return null; }
  }

  function renderAgent() {
    const state = agent ? agent.state : "logged_out";
    const el = $("state");
    el.dataset.state = state;
    el.textContent = CTI.t(`state.${state}`) + (agent && agent.reason ? ` (${CTI.label("pause", agent.reason)})` : "");
    $("btn-login").disabled = state !== "logged_out";
    $("btn-ready").disabled = !["paused", "logged_out"].includes(state) && state !== "wrap_up";
    $("btn-pause").disabled = state === "logged_out" || state === "paused";
    $("btn-wrapup").disabled = state !== "wrap_up";
    $("btn-logout").disabled = state === "logged_out";
    clearInterval(wrapTimer);
    const tick = () => {
      $("state-since").textContent = agent && agent.since ? CTI.since(agent.since) : "";
      const until = agent && agent.state === "wrap_up" ? agent.wrapup_until : null;
      $("wrapup-left").textContent = until
        ? CTI.t("pop.wrapup_left", { seconds: Math.max(0, Math.round(until - Date.now() / 1000)) })
        : "";
    };
    tick();
    wrapTimer = setInterval(tick, 1000);
  }

  function renderCall(status) {
    const pop = $("screenpop");
    if (status) { $("call-status").textContent = CTI.t(`pop.${status}`); pop.dataset.status = status; }
    if (!call) {
      $("no-call").hidden = false;
      $("call-details").hidden = true;
      $("vip").hidden = true;
      pop.dataset.interaction = "";
      return;
    }
    pop.dataset.interaction = call.interaction;
    if (call.number && !$("callback-number").value) $("callback-number").value = call.number;
    $("no-call").hidden = true;
    $("call-details").hidden = false;
    $("vip").hidden = !call.vip;
    $("screenpop-name").textContent = call.name || (call.contact && call.contact.name) || CTI.t("pop.unknown");
    $("screenpop-number").textContent = (call.kind === "callback" ? `${CTI.t("pop.callback")} ` : "") + (call.number || "");
    $("screenpop-customer").textContent = call.customer_id || (call.contact && call.contact.id) || "";
    $("screenpop-queue").textContent = call.queue || "";
    $("screenpop-waited").textContent = call.waited != null ? `${Math.round(call.waited)} s` : "";
    $("screenpop-intent").textContent = call.intent || "";
    $("screenpop-ivr").textContent = (call.ivr_path || []).join(" › ");
    $("screenpop-transferred-by").textContent =
      call.transferred_by ? agentNames[call.transferred_by] || call.transferred_by : "";
    $("screenpop-notes").textContent = call.notes || "";
    const history = $("screenpop-history");
    history.innerHTML = "";
    for (const item of call.history || []) {
      const li = document.createElement("div");
      li.textContent = [item.at, item.queue, item.agent, item.disposition].filter(Boolean).join(" · ");
      history.appendChild(li);
    }
    renderScript();
  }

  function renderScript() {
    const scripts = window.AGENT_SCRIPTS[CTI.lang] || window.AGENT_SCRIPTS.fr;
    const steps = (call && (scripts[call.intent] || scripts[call.queue])) || scripts.default;
    $("script").innerHTML = "";
    for (const step of steps) {
      const li = document.createElement("li");
      li.textContent = step.replace("{agent}", (agent && agent.name) || me.login);
      $("script").appendChild(li);
    }
  }

  function notify(pop) {
    if (!document.hidden || !("Notification" in window)) return;
    if (Notification.permission === "granted") {
      new Notification(CTI.t("notify.ringing", { name: pop.name || pop.number || "" }));
    }
  }

  function onEvent(msg) {
    const data = msg.data;
    switch (msg.kind) {
      case "agent.state": agent = data; renderAgent(); break;
      case "call.ringing": call = data; renderCall("ringing"); notify(data); break;
      case "call.contact": if (call && call.interaction === data.interaction) { call = data; renderCall(); } break;
      case "call.answered": renderCall("answered"); break;
      case "call.ended": renderCall("ended"); break;
      case "call.cancelled": if (call && call.interaction === data.interaction) { call = null; renderCall("cancelled"); } break;
      case "call.transferred": renderCall("ended"); break;
      case "call.held": renderCall("held"); break;
      case "call.resumed": renderCall("answered"); break;
      case "message": {
        const li = document.createElement("li");
        li.textContent = `${CTI.t("msg.from", { from: data.from })} : ${data.text}`;
        $("messages").prepend(li);
        break;
      }
      default: break;
    }
  }

  function fillChoices(select, values, prefix) {
    select.innerHTML = "";
    for (const value of values || []) {
      select.add(new Option(CTI.label(prefix, value), value));
    }
  }

  function fillTransferTargets(snapshot) {
    fillChoices($("pause-reason"), snapshot.pause_reasons, "pause");
    fillChoices($("disposition-code"), snapshot.dispositions, "disp");
    $("xfer-queue").innerHTML = "";
    for (const q of snapshot.queues || []) $("xfer-queue").add(new Option(q, q));
    $("xfer-agent").innerHTML = "";
    agentNames = {};
    for (const a of snapshot.agents || []) {
      agentNames[a.agent] = `${a.name} (${a.agent})`;
      if (a.agent !== me.agent) $("xfer-agent").add(new Option(agentNames[a.agent], a.agent));
    }
  }

  function start() {
    me = CTI.who();
    $("login-panel").hidden = true;
    $("desk").hidden = false;
    $("signout").hidden = false;
    $("who").textContent = `${me.login}`;
    if ("Notification" in window && Notification.permission === "default") Notification.requestPermission();
    link = CTI.connect({
      status: (s) => { $("connection").textContent = CTI.t(`conn.${s}`); $("connection").dataset.status = s; },
      welcome: (msg) => {
        if (!msg.resumed) {
          agent = msg.snapshot.agent || null;
          call = msg.snapshot.call || null;
          renderAgent();
          renderCall(call ? (agent && agent.state === "reserved" ? "ringing" : "answered") : null);
          fillTransferTargets(msg.snapshot);
        }
      },
      event: onEvent,
      error: (msg) => showError(msg.message),
      unauthenticated: () => location.reload(),
    });
    window.ctiLink = link; // tests cut the socket through this
  }

  $("lang").value = CTI.lang;
  CTI.translate(document);
  $("lang").onchange = () => { CTI.setLang($("lang").value); renderAgent(); if (me) renderScript(); };

  $("login-form").onsubmit = async (ev) => {
    ev.preventDefault();
    $("login-error").textContent = "";
    try {
      const who = await CTI.login($("login").value, $("password").value);
      if (who.role !== "agent") { location.href = "/wallboard"; return; }
      start();
      const extension = $("extension").value.trim();
      if (extension) await act("login", { endpoint: extension });
    } catch (e) {
      $("login-error").textContent = CTI.t("login.failed", { error: e.message });
    }
  };
  $("signout").onclick = async () => {
    try { await CTI.api("POST", "/api/auth/logout"); } catch (e) { /* already gone */ }
    if (link) link.close();
    CTI.logoutLocal();
    location.reload();
  };
  $("btn-login").onclick = () => act("login", $("extension").value.trim() ? { endpoint: $("extension").value.trim() } : undefined);
  $("btn-ready").onclick = () => act("ready");
  $("btn-pause").onclick = () => act("pause", { reason: $("pause-reason").value });
  $("btn-wrapup").onclick = () => act("wrapup/end");
  $("btn-logout").onclick = () => act("logout");
  $("disposition-save").onclick = async () => {
    if (!call) return;
    showError("");
    try {
      await CTI.api("POST", `/api/interactions/${call.interaction}/disposition`, {
        agent: me.agent, code: $("disposition-code").value, notes: $("disposition-notes").value,
      });
      $("disposition-result").textContent = CTI.t("disp.saved");
    } catch (e) { showError(e.message); }
  };
  $("xfer-kind").onchange = () => {
    const kind = $("xfer-kind").value;
    $("xfer-queue").hidden = kind !== "queue";
    $("xfer-agent").hidden = kind !== "agent";
    $("xfer-number").hidden = kind !== "number";
  };
  function target() {
    const kind = $("xfer-kind").value;
    const value = $(`xfer-${kind}`).value;
    return { [kind]: value };
  }
  async function transferred(promise) {
    const result = await promise;
    if (result) $("transfer-result").textContent = CTI.t("xfer.done");
  }
  $("btn-blind").onclick = () => transferred(act("transfer", target()));
  $("btn-consult").onclick = () => transferred(act("consult", { number: $("xfer-number").value }));
  $("btn-complete").onclick = () => transferred(act("consult/complete"));
  $("btn-cancel").onclick = () => act("consult/cancel");
  $("btn-conference").onclick = () => act("conference", target());
  $("btn-hold").onclick = () => act("hold");
  $("btn-resume").onclick = () => act("resume");
  $("btn-hangup").onclick = () => act("hangup");
  $("btn-dial").onclick = async () => {
    const result = await act("dial", { number: $("callback-number").value.trim() });
    if (result) $("callback-result").textContent = CTI.t("cb.dialing");
  };
  $("btn-callback").onclick = async () => {
    if (!call) return;
    const local = $("callback-at").value;  // the browser's time zone
    const body = { interaction: call.interaction, number: $("callback-number").value.trim() };
    if (local) body.at = new Date(local).toISOString();
    const result = await act("callbacks", body);
    if (result) $("callback-result").textContent = CTI.t("cb.done");
  };

  if (CTI.who()) start();
})();
