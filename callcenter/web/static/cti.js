// CTI client shared by the agent desktop and the wallboard.
// Protocol: docs/cti-protocol.md. Actions go through REST; the socket pushes.
"use strict";

const CTI = (() => {
  const store = window.sessionStorage;
  let lang = store.getItem("cc.lang") || (navigator.language || "fr").slice(0, 2);
  if (!["fr", "en"].includes(lang)) lang = "fr";

  function t(key, vars) {
    const table = (window.I18N && window.I18N[lang]) || {};
    let text = table[key] || (window.I18N && window.I18N.en[key]) || key;
    for (const [k, v] of Object.entries(vars || {})) text = text.replace(`{${k}}`, v);
    return text;
  }

  // The translation of a configured value (a pause reason, a disposition
  // code) under "prefix.value"; the value itself when there is none.
  function label(prefix, value) {
    const key = `${prefix}.${value.replace(/[- ]/g, "_")}`;
    const text = t(key);
    return text === key ? value : text;
  }

  function setLang(value) {
    lang = value;
    store.setItem("cc.lang", value);
    document.documentElement.lang = value;
    translate(document);
  }

  function translate(root) {
    root.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
    root.querySelectorAll("[data-i18n-placeholder]").forEach((el) => {
      el.placeholder = t(el.dataset.i18nPlaceholder);
    });
  }

  async function api(method, path, body) {
    const headers = { "Content-Type": "application/json" };
    const token = store.getItem("cc.token");
    if (token) headers.Authorization = `Bearer ${token}`;
    const reply = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = {};
    try { data = await reply.json(); } catch (e) { data = {}; }
    if (!reply.ok) {
      if (reply.status === 401 && path !== "/api/auth/login") logoutLocal();
      throw new Error(data.error || `HTTP ${reply.status}`);
    }
    return data;
  }

  async function login(name, password) {
    const who = await api("POST", "/api/auth/login", { login: name, password });
    store.setItem("cc.token", who.token);
    store.setItem("cc.who", JSON.stringify(who));
    if (who.language) setLang(who.language);
    return who;
  }

  function who() {
    const raw = store.getItem("cc.who");
    return raw ? JSON.parse(raw) : null;
  }

  function logoutLocal() {
    store.removeItem("cc.token");
    store.removeItem("cc.who");
    store.removeItem("cc.epoch");
    store.removeItem("cc.seq");
  }

  // One live connection; reconnects with backoff and resumes where it stopped.
  function connect(handlers) {
    let socket = null;
    let retry = 500;
    let lastHeard = Date.now();
    let heartbeat = 15;
    let closedByUs = false;
    let timer = null;

    function open() {
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(`${scheme}://${location.host}/cti/ws`);
      socket.onopen = () => {
        const hello = { type: "hello", version: 1, token: store.getItem("cc.token") || "" };
        const epoch = store.getItem("cc.epoch");
        const seq = store.getItem("cc.seq");
        if (epoch && seq !== null) { hello.epoch = epoch; hello.after = Number(seq); }
        socket.send(JSON.stringify(hello));
        handlers.status && handlers.status("connected");
      };
      socket.onmessage = (raw) => {
        lastHeard = Date.now();
        const msg = JSON.parse(raw.data);
        if (msg.type === "welcome") {
          retry = 500;
          heartbeat = msg.heartbeat || 15;
          store.setItem("cc.epoch", msg.epoch);
          store.setItem("cc.seq", String(msg.seq));
          handlers.welcome && handlers.welcome(msg);
        } else if (msg.type === "event") {
          const expected = Number(store.getItem("cc.seq") || "0") + 1;
          if (msg.seq !== expected) {
            // A gap: start again from a snapshot rather than show a wrong screen.
            store.removeItem("cc.epoch");
            socket.close(4000, "gap");
            return;
          }
          store.setItem("cc.seq", String(msg.seq));
          handlers.event && handlers.event(msg);
        } else if (msg.type === "ping") {
          socket.send(JSON.stringify({ type: "pong", nonce: msg.nonce }));
        } else if (msg.type === "error") {
          handlers.error && handlers.error(msg);
        }
      };
      socket.onclose = (ev) => {
        handlers.status && handlers.status("disconnected");
        if (closedByUs) return;
        if (ev.code === 4401) { logoutLocal(); handlers.unauthenticated && handlers.unauthenticated(); return; }
        setTimeout(open, retry);
        retry = Math.min(retry * 2, 10000);
      };
    }

    // Heartbeat from our side; a throttled tab may run this late, which is fine:
    // the server never logs an agent out for a silent page, it only closes the socket.
    timer = setInterval(() => {
      if (socket && socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify({ type: "ping", nonce: String(Date.now()) }));
        if (Date.now() - lastHeard > heartbeat * 3000) socket.close(4000, "silent server");
      }
    }, 10000);

    open();
    return {
      close() { closedByUs = true; clearInterval(timer); if (socket) socket.close(1000, "bye"); },
      drop() { if (socket) socket.close(4000, "test drop"); },
    };
  }

  function since(epochSeconds) {
    if (!epochSeconds) return "";
    const s = Math.max(0, Math.floor(Date.now() / 1000 - epochSeconds));
    const m = Math.floor(s / 60);
    return `${m}:${String(s % 60).padStart(2, "0")}`;
  }

  function escape(text) {
    const div = document.createElement("div");
    div.textContent = text == null ? "" : String(text);
    return div.innerHTML;
  }

  return { t, label, setLang, translate, api, login, who, logoutLocal, connect, since, escape,
    get lang() { return lang; } };
})();
