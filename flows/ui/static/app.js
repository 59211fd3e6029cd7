// mirograph's web view: plain DOM, no build step, no dependency.
// Every text from a run (questions, replies, tool calls and results) enters the
// page as a text node (el()'s string children, textContent): never as markup.
"use strict";

const view = document.getElementById("view");
const notice = document.getElementById("notice");
const STATUSES = ["running", "paused", "queued", "completed", "no_answer", "failed"];
const FLOWS = ["single-agent", "deep-research", "mirothinker-v1.0", "mirothinker-v1.5", "mirothinker-v1.7"];
let page = null; // the current page's state; its stop() runs when the page changes

// -- small helpers -----------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  return put(node, ...children);
}

// Appends children: nodes as they are, any other value as text; arrays flattened,
// null, undefined and false left out.
function add(node, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Replaces a node's children (as add() appends them).
function put(node, ...children) {
  node.replaceChildren();
  return add(node, ...children);
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  return add(node, ...children);
}

async function api(path, options) {
  const init = Object.assign({ credentials: "same-origin" }, options || {});
  if (init.body !== undefined) {
    init.method = init.method || "POST";
    init.headers = { "Content-Type": "application/json" };
    init.body = JSON.stringify(init.body);
  }
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (!response.ok) {
    const message = (data && data.error) || `${response.status} ${response.statusText}`;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return data;
}

function say(message) { notice.textContent = message || ""; }
function n(value) { return value === null || value === undefined ? "-" : Number(value).toLocaleString("en-US"); }
function count(value, one, many) { return `${n(value)} ${value === 1 ? one : many || `${one}s`}`; }
function secs(value) { return value ? `${Number(value).toFixed(1)} s` : "-"; }
function age(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}
function badge(status) { return el("span", { class: `badge s-${status}`, "data-status": status }, status); }
function tokensOf(c) { return (c.prompt_tokens || 0) + (c.completion_tokens || 0); }
function enc(value) { return encodeURIComponent(value); }

function debounce(fn, ms) {
  let timer = null;
  return () => { if (timer) return; timer = setTimeout(() => { timer = null; fn(); }, ms); };
}

// -- routing -------------------------------------------------------------------------

function route() {
  if (page && page.stop) page.stop();
  page = null;
  say("");
  const hash = location.hash || "#/";
  const [path, query] = hash.slice(1).split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  for (const link of document.querySelectorAll("nav a")) link.classList.remove("on");
  const mark = (name) => { const a = document.querySelector(`nav a[data-nav=${name}]`); if (a) a.classList.add("on"); };
  if (parts[0] === "run" && parts[1]) page = runPage(parts[1], params);
  else if (parts[0] === "new") { mark("new"); page = newRunPage(); }
  else if (parts[0] === "bench") { mark("bench"); page = benchPage(); }
  else { mark("runs"); page = runsPage(params); }
}
window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);

// -- the runs page ---------------------------------------------------------------------

function runsPage(params) {
  const state = { status: params.get("status") || "", q: params.get("q") || "", timer: null, stopped: false };
  const status = el("select", { "data-test": "status-filter", "aria-label": "status" },
    el("option", { value: "" }, "any status"), STATUSES.map((s) => el("option", { value: s }, s)));
  status.value = state.status;
  const text = el("input", { type: "search", placeholder: "filter by id, question, flow", "data-test": "text-filter", size: 34 });
  text.value = state.q;
  const body = el("tbody");
  const count = el("span", { class: "muted" });
  put(view,
    el("h1", {}, "Runs"),
    el("div", { class: "filters" }, status, text, count),
    el("table", { "data-test": "runs" },
      el("thead", {}, el("tr", {}, ["id", "status", "question", "flow"].map((h) => el("th", {}, h)),
        ["turns", "tokens", "age"].map((h) => el("th", { class: "num" }, h)))),
      body));

  let asked = 0;
  async function load() {
    const mine = ++asked; // an answer to an older filter is dropped
    const query = new URLSearchParams();
    if (state.status) query.set("status", state.status);
    if (state.q) query.set("q", state.q);
    try {
      const data = await api(`/api/runs?${query}`);
      if (state.stopped || mine !== asked) return;
      put(body, ...data.runs.map((r) => el("tr", { "data-run": r.id },
        el("td", {}, el("a", { href: `#/run/${enc(r.id)}` }, r.id)),
        el("td", {}, badge(r.status)),
        el("td", { class: "q", title: r.question }, r.question),
        el("td", {}, r.flow),
        el("td", { class: "num" }, n(r.turns)),
        el("td", { class: "num" }, n(r.tokens)),
        el("td", { class: "num" }, age(r.age_seconds)))));
      count.textContent = `${data.runs.length} run${data.runs.length === 1 ? "" : "s"}`;
      say("");
    } catch (error) { say(error.message); }
  }
  const reload = () => { clearTimeout(state.timer); load().finally(schedule); };
  const schedule = () => { if (!state.stopped) state.timer = setTimeout(reload, 2000); };
  status.addEventListener("change", () => { state.status = status.value; reload(); });
  text.addEventListener("input", debounce(() => { state.q = text.value.trim(); reload(); }, 200));
  load().finally(schedule);
  return { stop() { state.stopped = true; clearTimeout(state.timer); } };
}

// -- starting a run ------------------------------------------------------------------------

function newRunPage() {
  const question = el("textarea", { "data-test": "question", placeholder: "What should the agents investigate?" });
  const flow = el("input", { "data-test": "flow", list: "flows", placeholder: "single-agent (default), deep-research, or a flow file" });
  const sets = el("input", { "data-test": "sets", placeholder: "overrides: key=value, one per comma (optional)" });
  const error = el("p", { class: "error-line", "data-test": "start-error" });
  const button = el("button", { class: "primary", "data-test": "start" }, "Start");
  button.addEventListener("click", async () => {
    button.disabled = true;
    error.textContent = "";
    try {
      const overrides = sets.value.split(",").map((s) => s.trim()).filter(Boolean);
      const made = await api("/api/runs", { body: { question: question.value, flow: flow.value || null, set: overrides } });
      location.hash = `#/run/${enc(made.id)}`;
    } catch (e) { error.textContent = e.message; button.disabled = false; }
  });
  put(view, el("h1", {}, "New run"),
    el("div", { class: "form" },
      el("label", {}, "Question", question), el("label", {}, "Flow", flow), sets,
      el("datalist", { id: "flows" }, FLOWS.map((f) => el("option", { value: f }))),
      el("div", {}, button), error,
      el("p", { class: "muted" }, "The run is started as `mirograph run` would start it, in a process of its own: stopping the web view does not stop it.")));
  question.focus();
  return null;
}

// -- a run ---------------------------------------------------------------------------------

function runPage(runId, params) {
  const state = {
    runId, summary: null, selected: params.get("call"), offset: null, follow: true,
    source: null, seq: 0, stopped: false, poll: null, settle: null, total: 0,
    asked: 0, pageAsked: 0, drawn: new Map(),
  };
  const header = el("section", { class: "panel", "data-test": "run-head" });
  const tree = el("div", { class: "tree", "data-test": "tree" });
  const timeline = el("div", { "data-test": "timeline" });
  const chart = el("div", { "data-test": "tokens" });
  const turns = el("div", { "data-test": "turns" });
  put(view,
    header,
    el("div", { class: "grid" },
      el("aside", {}, el("h2", {}, "Agents"), el("div", { class: "panel" }, tree),
        el("h2", {}, "Timeline"), el("div", { class: "panel" }, timeline)),
      el("section", {}, el("h2", {}, "Tokens per turn"), el("div", { class: "panel" }, chart),
        el("h2", { "data-test": "turns-title" }, "Turns"), el("div", { class: "panel" }, turns))));

  async function refresh() {
    if (state.stopped) return;
    const asked = ++state.asked; // answers that come back out of order are dropped
    let summary;
    try { summary = await api(`/api/runs/${enc(runId)}`); }
    catch (error) {
      if (error.status === 404) { put(view, el("h1", {}, "No such run"), el("p", {}, error.message)); state.stopped = true; return; }
      say(error.message);
      clearTimeout(state.poll);
      if (!state.stopped) state.poll = setTimeout(refresh, 2000); // the server may come back
      return;
    }
    if (state.stopped || asked !== state.asked) return;
    say("");
    state.summary = summary;
    const calls = summary.calls;
    if (!state.selected || !calls.some((c) => c.label === state.selected)) state.selected = calls.length ? calls[0].label : null;
    drawHeader(summary);
    drawTree(summary);
    drawTimeline(summary);
    drawChart(summary);
    await loadTurns();
    live(summary.run.status === "running");
  }
  const soon = debounce(refresh, 50);

  function drawHeader(summary) {
    const run = summary.run;
    const usage = run.usage || {};
    const pause = el("button", { "data-test": "pause", disabled: run.status !== "running" }, "Pause");
    const resume = el("button", { "data-test": "resume", disabled: !["paused", "failed"].includes(run.status) }, "Resume");
    pause.addEventListener("click", () => steer("pause", pause));
    resume.addEventListener("click", () => steer("resume", resume));
    put(header,
      el("div", { class: "head" },
        el("h1", {}, run.id), el("span", { "data-test": "run-status" }, badge(run.status)),
        el("span", { class: "muted" }, `flow ${run.flow}`),
        el("span", { class: "muted" }, `${n(usage.model_calls)} model calls, ${n(usage.tool_calls)} tool calls`),
        el("span", { class: "muted" }, `${n((usage.prompt_tokens || 0) + (usage.completion_tokens || 0))} tokens`),
        el("span", { class: "muted" }, `running time ${secs(run.wall_seconds)}`),
        el("span", {}, pause, " ", resume)),
      el("div", { class: "question", "data-test": "question" }, run.question),
      run.reason ? el("div", { class: "muted" }, `reason: ${run.reason}`) : null,
      run.answer !== null && run.answer !== undefined ? el("div", { class: "answer", "data-test": "answer" }, el("b", {}, "Answer: "), run.answer) : null,
      (run.warnings || []).map((w) => el("div", { class: "note" }, `warning: ${w}`)));
  }

  async function steer(action, button) {
    button.disabled = true;
    try { await api(`/api/runs/${enc(runId)}/${action}`, { body: {} }); say(action === "pause" ? "pause asked: the run stops at its next step" : "resumed"); }
    catch (error) { say(error.message); }
    soon();
  }

  function drawTree(summary) {
    const byParent = new Map();
    for (const call of summary.calls) {
      const key = call.parent || "";
      if (!byParent.has(key)) byParent.set(key, []);
      byParent.get(key).push(call);
    }
    const branch = (parent) => el("ul", {}, (byParent.get(parent) || []).map((call) => el("li", {},
      el("div", { class: call.label === state.selected ? "on" : null, "data-call": call.label,
        onclick: () => select(call.label) },
        el("b", {}, call.label), " ", badge(call.status),
        el("div", { class: "stats" }, `${count(call.turns, "turn")} · ${n(tokensOf(call))} tokens · ${secs(call.wall_seconds)}`
          + (call.rollbacks ? ` · ${count(call.rollbacks, "rollback")}` : "") + (call.retries ? ` · ${count(call.retries, "retry", "retries")}` : ""))),
      branch(call.label))));
    put(tree, summary.calls.length ? branch("") : el("p", { class: "muted" }, "No agent has started yet."));
  }

  function select(label) {
    if (label !== state.selected) {
      // the call chosen is shown at once: the turns of the one before must not stay
      // under its name while its own page is read (a live run's can take a moment)
      document.querySelector("[data-test=turns-title]").textContent = `Turns of ${label}`;
      put(turns, el("p", { class: "muted" }, `Loading the turns of ${label}…`));
    }
    state.selected = label;
    state.offset = null;
    state.follow = false;
    drawTree(state.summary);
    drawChart(state.summary);
    loadTurns();
    history.replaceState(null, "", `#/run/${enc(runId)}?call=${enc(label)}`);
  }

  function drawTimeline(summary) {
    const t = summary.timeline;
    const calls = summary.calls;
    const starts = t.sessions.map((s) => s.start);
    if (!starts.length) { put(timeline, el("p", { class: "muted" }, "No session recorded.")); return; }
    const t0 = Math.min(...starts);
    // a session with no end is running, or was killed: that one ends at its last event
    const live = summary.run.status === "running";
    const stop = (s) => s.end || (live ? t.now : s.last || t.now);
    const ends = t.sessions.map(stop);
    const t1 = Math.max(...ends, t0 + 1);
    const width = 300, row = 16, label = 70;
    const x = (ts) => label + ((ts - t0) / (t1 - t0)) * (width - label);
    const height = row * calls.length + 18;
    const shapes = [];
    t.sessions.forEach((s) => {
      shapes.push(svg("rect", { x: x(s.start), y: 0, width: Math.max(1, x(stop(s)) - x(s.start)), height: height - 16, fill: "#eef2fb", "data-session": s.ended || (live ? "running" : "stopped") },
        svg("title", {}, `session ${new Date(s.start * 1000).toLocaleString()} – ${s.ended || (live ? "running" : "stopped")}`)));
      if (s.ended === "run_paused") shapes.push(svg("line", { x1: x(s.end), x2: x(s.end), y1: 0, y2: height - 16, stroke: "#a86500", "stroke-dasharray": "3 2" }, svg("title", {}, `paused: ${s.reason || ""}`)));
    });
    calls.forEach((call, i) => {
      shapes.push(svg("text", { x: 0, y: i * row + 12, "font-size": 10, fill: "#1d1f21" }, call.label.length > 12 ? `${call.label.slice(0, 11)}…` : call.label));
      for (const [start, end] of t.spans[call.label] || []) {
        shapes.push(svg("rect", { x: x(start), y: i * row + 3, width: Math.max(2, x(end || t.now) - x(start)), height: row - 6, rx: 2,
          fill: call.depth === 0 ? "#2457c5" : "#6f8fd8", "data-span": call.label },
          svg("title", {}, `${call.label}: ${secs((end || t.now) - start)}`)));
      }
    });
    shapes.push(svg("text", { x: label, y: height - 3, "font-size": 10, fill: "#6b7075" }, new Date(t0 * 1000).toLocaleTimeString()));
    shapes.push(svg("text", { x: width, y: height - 3, "font-size": 10, fill: "#6b7075", "text-anchor": "end" }, `+${secs(t1 - t0)}`));
    put(timeline,
      svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%" }, shapes),
      el("div", { class: "muted" }, "bars: each agent call's running time; shaded: sessions; dashed: a pause"));
  }

  function drawChart(summary) {
    const rows = summary.tokens[state.selected] || [];
    if (!rows.length) { put(chart, el("p", { class: "muted" }, "No turn yet.")); return; }
    const width = 900, height = 140;
    const top = Math.max(1, ...rows.map((r) => r[1] + r[3]));
    const bar = width / rows.length;
    const y = (v) => (v / top) * (height - 14);
    const parts = [];
    rows.forEach(([turn, prompt, cached, completion], i) => {
      const x0 = i * bar, w = Math.max(bar - (bar > 3 ? 1 : 0), 0.5);
      const fresh = Math.max(prompt - cached, 0);
      let base = height;
      for (const [value, color] of [[cached, "#3c6fd9"], [fresh, "#9db4e8"], [completion, "#e39b3b"]]) {
        const h = y(value);
        if (h > 0) parts.push(svg("rect", { x: x0, y: base - h, width: w, height: h, fill: color }));
        base -= h;
      }
      parts.push(svg("rect", { x: x0, y: 0, width: Math.max(bar, 1), height, fill: "transparent" },
        svg("title", {}, `turn ${turn}: prompt ${n(prompt)} (cached ${n(cached)}), completion ${n(completion)}`)));
    });
    put(chart,
      svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", height, preserveAspectRatio: "none", "data-turns": rows.length }, parts),
      el("div", { class: "chart-legend" },
        el("span", {}, el("i", { class: "sw", "data-c": "cached" }), "cached prompt"),
        el("span", {}, el("i", { class: "sw", "data-c": "prompt" }), "uncached prompt"),
        el("span", {}, el("i", { class: "sw", "data-c": "completion" }), "completion"),
        el("span", { class: "muted" }, `${state.selected}: ${rows.length} model replies, peak ${n(top)} tokens`)));
  }

  async function loadTurns() {
    const label = state.selected;
    if (!label) { put(turns, el("p", { class: "muted" }, "No agent call yet.")); return; }
    const call = state.summary.calls.find((c) => c.label === label);
    const size = state.summary.page_turns;
    const last = Math.max(0, Math.floor(Math.max(call.replies - 1, 0) / size) * size);
    const offset = state.offset === null || state.follow ? last : state.offset;
    const asked = ++state.pageAsked;
    let data;
    // the summary's seq: the page comes from the reading the summary came from
    try { data = await api(`/api/runs/${enc(runId)}/calls/${enc(label)}/turns?offset=${offset}&limit=${size}&seq=${state.summary.seq}`); }
    catch (error) { say(error.message); return; }
    if (state.stopped || label !== state.selected || asked !== state.pageAsked) return;
    state.offset = data.offset;
    state.total = data.total;
    const pager = el("div", { class: "pager" },
      el("button", { disabled: data.offset === 0, onclick: () => go(0) }, "first"),
      el("button", { disabled: data.offset === 0, onclick: () => go(Math.max(0, data.offset - size)) }, "previous"),
      el("span", { "data-test": "page" }, `turns ${data.total ? data.offset + 1 : 0}–${data.offset + data.turns.length} of ${data.total}`),
      el("button", { disabled: data.offset + size >= data.total, onclick: () => go(data.offset + size) }, "next"),
      el("button", { disabled: data.offset + size >= data.total, onclick: () => go(last, true) }, "last"));
    const title = document.querySelector("[data-test=turns-title]");
    title.textContent = `Turns of ${label}` + (call.subtask && call.depth > 0 ? "" : "");
    put(turns,
      call.depth > 0 && call.subtask ? el("div", { class: "question" }, el("b", {}, "Sub-task: "), call.subtask) : null,
      pager,
      data.turns.length ? data.turns.map((turn) => keptTurn(label, turn)) : el("p", { class: "muted" }, "No reply yet."));
    function go(to, follow) { state.offset = to; state.follow = !!follow; loadTurns(); }
  }

  // A turn drawn before with the same content keeps its node, so a live run's
  // refresh leaves the thinking a person unfolded and the results they opened.
  function keptTurn(label, turn) {
    const key = `${label}\u0000${turn.n}`;
    const content = JSON.stringify(turn);
    const before = state.drawn.get(key);
    if (before && before.content === content) return before.node;
    const node = drawTurn(label, turn);
    state.drawn.set(key, { content, node });
    if (state.drawn.size > 400) state.drawn.delete(state.drawn.keys().next().value);
    return node;
  }

  function drawTurn(label, turn) {
    const tag = turn.closing ? "closing" : turn.summary ? "summary" : `turn ${turn.in_attempt}`;
    const usage = turn.usage;
    return el("article", { class: "turn", "data-turn": turn.n },
      el("div", { class: "turn-head" }, el("b", {}, tag),
        turn.attempt > 1 ? el("span", {}, `attempt ${turn.attempt}`) : null,
        usage ? el("span", {}, `${n(usage.prompt_tokens)} prompt (${n(usage.cached_tokens)} cached) + ${n(usage.completion_tokens)} completion`) : null,
        turn.notes.map((note) => el("span", { class: "note", "data-test": "note" }, note))),
      turn.thinking ? el("details", { class: "thinking" }, el("summary", {}, `thinking (${n(turn.thinking.length)} characters)`), el("pre", {}, turn.thinking)) : null,
      turn.text ? el("div", { class: "text" }, turn.text) : null,
      turn.calls.map((call) => el("div", { class: "call" },
        el("div", {}, el("span", { class: "name" }, call.name), call.invalid ? el("span", { class: "note" }, " (malformed)") : null,
          call.sub ? el("span", {}, " → ", el("a", { href: "#", "data-sub": call.sub, onclick: (e) => { e.preventDefault(); select(call.sub); } }, `open ${call.sub}`)) : null),
        el("pre", { class: "args" }, typeof call.args === "string" ? call.args : JSON.stringify(call.args, null, 2)),
        call.result ? drawResult(label, turn.n, call.result) : el("div", { class: "muted" }, "(no result recorded)"))),
      turn.other_results.map((result) => drawResult(label, turn.n, result)));
  }

  function drawResult(label, number, result) {
    const body = el("pre", { "data-test": "result" }, result.preview);
    const box = el("div", { class: result.error ? "result error" : "result" }, result.error ? el("b", {}, "error: ") : null, body);
    if (result.chars > result.preview.length) {
      const more = el("button", { "data-test": "full-result" }, `show all ${n(result.chars)} characters`);
      more.addEventListener("click", async () => {
        more.disabled = true;
        try {
          const data = await api(`/api/runs/${enc(runId)}/calls/${enc(label)}/turns/${number}/results/${result.index}`);
          body.textContent = data.text;
          more.remove();
        } catch (error) { say(error.message); more.disabled = false; }
      });
      box.append(more);
    }
    return box;
  }

  function live(running) {
    if (running && !state.source) {
      const source = new EventSource(`/api/runs/${enc(runId)}/events?after=${state.summary.seq}`);
      state.source = source;
      source.onmessage = () => {
        state.follow = state.follow || state.offset === null || state.offset + state.summary.page_turns >= state.total;
        soon();
        // an event can be told a moment before its step's checkpoint is written:
        // read once more when the events go quiet, so the last one is never missed
        clearTimeout(state.settle);
        state.settle = setTimeout(refresh, 500);
      };
      source.addEventListener("end", () => { source.close(); state.source = null; soon(); });
      // a stream refused (a restarted server with a new token, the store away when it
      // reconnected) is not retried by the browser: look again in a while, so the
      // page says why, and goes live again once it can (else it froze, "running")
      const lost = () => {
        source.close();
        if (state.source === source) state.source = null;
        clearTimeout(state.poll);
        if (!state.stopped) state.poll = setTimeout(refresh, 2000);
      };
      source.addEventListener("failure", (e) => { try { say(JSON.parse(e.data).error); } catch (_) { /* said on the next look */ } lost(); });
      // a dropped connection too: the browser would retry on its own schedule, slower
      // and blind (a server that comes back asking another token fails it only then)
      source.onerror = lost;
    }
    clearTimeout(state.poll);
    // not live: look again now and then, for a resume started elsewhere
    if (!state.stopped && !running) state.poll = setTimeout(refresh, 2000);
  }

  refresh();
  return { stop() { state.stopped = true; clearTimeout(state.poll); clearTimeout(state.settle); if (state.source) state.source.close(); } };
}

// -- benchmarks ---------------------------------------------------------------------------

function benchPage() {
  const state = { stopped: false, timer: null, drawn: "" };
  put(view, el("h1", {}, "Benchmarks"), el("p", { class: "muted" }, "Loading…"));
  const pct = (v) => (v === null || v === undefined ? "-" : `${(v * 100).toFixed(1)} %`);
  const title = (b) => {
    const s = b.summary || {}, settings = b.settings || {};
    return `${s.benchmark || settings.benchmark || "bench"} · ${s.flow || settings.flow || ""}`;
  };

  function draw(benches) {
    const compare = el("table", { "data-test": "benches" },
      el("thead", {}, el("tr", {}, ["benchmark · flow", "attempts", "avg@K", "pass@K", "± stderr", "judge", "state"].map((h) => el("th", {}, h)))),
      el("tbody", {}, benches.map((b) => {
        const s = b.summary || {};
        return el("tr", { "data-bench-row": b.index },
          el("td", {}, el("a", { href: `#bench-${b.index}`, onclick: (e) => { e.preventDefault(); const at = document.getElementById(`bench-${b.index}`); if (at) at.scrollIntoView(); } }, title(b))),
          el("td", { class: "num" }, `${n(s.attempts_done)} of ${n(s.attempts_expected)}`),
          el("td", { class: "num" }, pct(s.avg_at_k)), el("td", { class: "num" }, pct(s.pass_at_k)),
          el("td", { class: "num" }, pct(s.stderr)), el("td", {}, s.judge || (b.settings || {}).judge || "-"),
          el("td", {}, b.summary ? (s.complete ? "complete" : "owed attempts") : "no judged attempt yet"));
      })));
    put(view, el("h1", {}, "Benchmarks"), compare, benches.map((b) => {
      const s = b.summary || {};
      const groups = Object.entries(s.by_group || {});
      const runs = (b.settings || {}).bench_id;
      return el("section", { class: "bench panel", id: `bench-${b.index}`, "data-bench": b.index },
        el("h2", {}, title(b)),
        el("div", { class: "muted" }, b.folder, runs ? [" · ", el("a", { href: `#/?q=${enc(runs)}` }, "its runs")] : null),
        el("table", {}, el("tbody", {},
          [["tasks", n(s.tasks)], ["runs per task (K)", n(s.runs)], ["attempts", `${n(s.attempts_done)} of ${n(s.attempts_expected)}`],
            ["avg@K", pct(s.avg_at_k)], ["pass@K", pct(s.pass_at_k)], ["without restarts, avg@K", pct((s.without_restarts || {}).avg_at_k)],
            ["judge", s.judge], ["judge errors", n(s.judge_errors)], ["mean turns", s.mean_turns === undefined || s.mean_turns === null ? "-" : s.mean_turns.toFixed(1)],
            ["complete", s.complete ? "yes" : "no"]].map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))),
          groups.map(([g, v]) => el("tr", {}, el("th", {}, `group ${g}`), el("td", {}, `${pct(v.avg_at_k)} avg@K, ${pct(v.pass_at_k)} pass@K, ${v.tasks} tasks`))))),
        // a new address each time the summary changes: a plot redrawn by a running bench is fetched again
        el("div", {}, b.plots.map((p) => el("img", { src: `/api/bench/${b.index}/${p}?v=${enc(String(s.attempts_done))}`, alt: p }))));
    }));
  }

  async function load() {
    try {
      const data = await api("/api/bench");
      if (state.stopped) return;
      say("");
      const drawn = JSON.stringify(data.benches);
      if (drawn === state.drawn) return; // unchanged: keep the page (and where it is scrolled)
      state.drawn = drawn;
      if (!data.benches.length) {
        put(view, el("h1", {}, "Benchmarks"), el("p", { class: "muted" },
          "No `mirograph bench` output here. Start the web view with --bench FOLDER (default ./bench)."));
        return;
      }
      draw(data.benches);
    } catch (error) { say(error.message); }
  }
  // a bench that is running writes its summary as attempts are judged: look again now and then
  const again = () => { if (!state.stopped) state.timer = setTimeout(() => load().finally(again), 5000); };
  load().finally(again);
  return { stop() { state.stopped = true; clearTimeout(state.timer); } };
}
