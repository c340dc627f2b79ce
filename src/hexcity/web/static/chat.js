/* hexcity support chat: the demo customer asks /assistant/v1; answers come with numbered citations
 * and generative-UI components from the versioned registry. Every component's props are validated
 * against the registry's JSON schema before rendering. Trusted components are plain DOM built with
 * textContent only (never innerHTML); sandboxed components run in an iframe with
 * sandbox="allow-scripts" and NO allow-same-origin, talking to the page only by postMessage.
 * A user action in a component (track, ask for a refund) becomes a new message in the conversation;
 * the refund form's confirmed submit calls the real endpoint (POST submit_url with the customer's
 * token and an Idempotency-Key made once per form, so a repeated submit never refunds twice) and the
 * outcome (refund id, amount, status) comes back as the next assistant turn. */
"use strict";

(function () {
  const CHAT = {
    token: null,
    subject: null,
    schemas: null, // "name@version" -> {schema, sandbox}
    messages: [], // [{who: "you"|"support", text, citations, ui}]
    answers: 0,
    rejectedComponents: 0,
    actions: [], // user actions that came back from components, newest last
    frames: new Map(), // iframe contentWindow -> {component, props}
  };
  const MAX_MESSAGES = 50;
  const MAX_QUESTION_CHARS = 1000;
  const MAX_ROUTE_POINTS = 500;
  const MAX_ACTIONS = 50;
  const el = (id) => document.getElementById(id);
  let busy = false;

  function node(tag, attrs, text) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
    if (text !== undefined && text !== null) n.textContent = String(text);
    return n;
  }

  async function getToken() {
    const r = await fetch("/web/v1/demo/customer-token");
    if (!r.ok) throw new Error("the support chat needs a demo server (customer token " + r.status + ")");
    const body = await r.json();
    CHAT.token = body.token;
    CHAT.subject = body.subject;
    el("chat-who").textContent = "as demo customer " + body.subject;
  }

  async function api(path, init, extraHeaders) {
    for (let attempt = 0; attempt < 2; attempt++) {
      if (!CHAT.token) await getToken();
      const headers = Object.assign(
        { Authorization: "Bearer " + CHAT.token, "Content-Type": "application/json" }, extraHeaders || {});
      const r = await fetch(path, Object.assign({}, init, { headers: headers }));
      if (r.status === 401 && attempt === 0) { CHAT.token = null; continue; }
      return r;
    }
    throw new Error("not authorised");
  }

  async function loadSchemas() {
    if (CHAT.schemas) return CHAT.schemas;
    const r = await api("/assistant/v1/components");
    if (!r.ok) throw new Error("components unavailable (" + r.status + ")");
    const schemas = new Map();
    for (const item of (await r.json()).items) schemas.set(item.key, item);
    CHAT.schemas = schemas;
    return schemas;
  }

  // -- JSON schema validation (the subset pydantic emits for the registry's props models) --------
  function resolve(schema, root) {
    if (schema && schema.$ref) {
      const name = schema.$ref.replace("#/$defs/", "");
      return (root.$defs || {})[name];
    }
    return schema;
  }

  function typeOk(type, v) {
    switch (type) {
      case "string": return typeof v === "string";
      case "integer": return Number.isInteger(v);
      case "number": return typeof v === "number" && Number.isFinite(v);
      case "boolean": return typeof v === "boolean";
      case "null": return v === null;
      case "array": return Array.isArray(v);
      case "object": return v !== null && typeof v === "object" && !Array.isArray(v);
      default: return false;
    }
  }

  function validate(schemaIn, v, root, path) {
    const schema = resolve(schemaIn, root);
    if (!schema) return path + ": unknown schema";
    if (schema.anyOf) {
      return schema.anyOf.some((s) => validate(s, v, root, path) === null) ? null : path + ": no variant matches";
    }
    if (schema.type && !typeOk(schema.type, v)) return path + ": expected " + schema.type;
    if ("const" in schema && v !== schema.const) return path + ": must be " + JSON.stringify(schema.const);
    if (schema.enum && !schema.enum.includes(v)) return path + ": not one of " + schema.enum.join(", ");
    if (typeof v === "string") {
      if (schema.minLength !== undefined && v.length < schema.minLength) return path + ": too short";
      if (schema.maxLength !== undefined && v.length > schema.maxLength) return path + ": too long";
      if (schema.pattern && !new RegExp(schema.pattern).test(v)) return path + ": bad format";
    }
    if (typeof v === "number") {
      if (schema.minimum !== undefined && v < schema.minimum) return path + ": too small";
      if (schema.maximum !== undefined && v > schema.maximum) return path + ": too large";
      if (schema.exclusiveMinimum !== undefined && v <= schema.exclusiveMinimum) return path + ": too small";
      if (schema.exclusiveMaximum !== undefined && v >= schema.exclusiveMaximum) return path + ": too large";
    }
    if (Array.isArray(v)) {
      if (schema.minItems !== undefined && v.length < schema.minItems) return path + ": too few items";
      if (schema.maxItems !== undefined && v.length > schema.maxItems) return path + ": too many items";
      for (let i = 0; i < v.length; i++) {
        const itemSchema = schema.prefixItems ? schema.prefixItems[i] : schema.items;
        if (!itemSchema) return path + "[" + i + "]: unexpected item";
        const err = validate(itemSchema, v[i], root, path + "[" + i + "]");
        if (err) return err;
      }
    }
    if (typeOk("object", v)) {
      const props = schema.properties || {};
      for (const key of schema.required || []) if (!(key in v)) return path + "." + key + ": required";
      for (const [key, value] of Object.entries(v)) {
        if (!(key in props)) {
          if (schema.additionalProperties === false) return path + "." + key + ": not allowed";
          continue;
        }
        const err = validate(props[key], value, root, path + "." + key);
        if (err) return err;
      }
    }
    return null;
  }

  // -- components ----------------------------------------------------------------------------------
  function routeMap(points, label) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 200 100");
    svg.setAttribute("class", "route-map");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
    const pts = points.slice(0, MAX_ROUTE_POINTS);
    const lats = pts.map((p) => p[0]), lngs = pts.map((p) => p[1]);
    const [s, n, w, e] = [Math.min(...lats), Math.max(...lats), Math.min(...lngs), Math.max(...lngs)];
    const sx = 190 / Math.max(e - w, 1e-9), sy = 90 / Math.max(n - s, 1e-9), k = Math.min(sx, sy);
    const xy = pts.map((p) => [5 + (p[1] - w) * k, 95 - (p[0] - s) * k]);
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", xy.map((p) => p[0].toFixed(1) + "," + p[1].toFixed(1)).join(" "));
    line.setAttribute("class", "route-line");
    svg.appendChild(line);
    for (const [i, cls] of [[0, "route-start"], [xy.length - 1, "route-end"]]) {
      const c = document.createElementNS(ns, "circle");
      c.setAttribute("cx", xy[i][0].toFixed(1));
      c.setAttribute("cy", xy[i][1].toFixed(1));
      c.setAttribute("r", "4");
      c.setAttribute("class", cls);
      svg.appendChild(c);
    }
    return svg;
  }

  function actionButton(text, action) {
    const b = node("button", { type: "button" }, text);
    b.addEventListener("click", () => userAction(action));
    return b;
  }

  function orderCard(p) {
    const card = node("article", { class: "ui-card", "data-component": "order-status-card", "aria-label": p.aria_label });
    card.appendChild(node("h4", {}, "Order " + p.order_id));
    const dl = node("dl", { class: "ui-facts" });
    const facts = [["Status", p.status]];
    if (p.estimated_delivery) facts.push(["Estimated delivery", p.estimated_delivery]);
    if (p.tracking_number) facts.push(["Tracking number", p.tracking_number]);
    for (const [k, v] of facts) { dl.appendChild(node("dt", {}, k)); dl.appendChild(node("dd", {}, v)); }
    card.appendChild(dl);
    if (p.shipments.length) {
      const ul = node("ul", { class: "ui-shipments", "aria-label": "Shipments" });
      for (const line of p.shipments) ul.appendChild(node("li", {}, line));
      card.appendChild(ul);
    }
    if (p.route.length >= 2) card.appendChild(routeMap(p.route, "Route map of order " + p.order_id));
    else card.appendChild(node("p", { class: "ui-note" }, "Route map: no route recorded yet"));
    const actions = node("div", { class: "ui-actions" });
    if (p.allowed_actions.includes("track")) {
      actions.appendChild(actionButton("Track order", { action: "track", order_id: p.order_id }));
    }
    actions.appendChild(actionButton("Request a refund", { action: "refund_help", order_id: p.order_id }));
    card.appendChild(actions);
    return card;
  }

  function money(cents) { return (cents / 100).toFixed(2); }

  function fareBreakdown(p) {
    const card = node("article", { class: "ui-card", "data-component": "fare-breakdown", "aria-label": p.aria_label });
    card.appendChild(node("h4", {}, "Fare: " + p.product));
    const dl = node("dl", { class: "ui-facts" });
    const rows = [
      ["Base fare", money(p.base_fare_cents)], ["Surge", p.surge_multiplier + "×"],
      ["Platform fee", money(p.platform_fee_cents)], ["Total", money(p.total_cents)],
      ["Valid for", p.valid_for_s + " s"],
    ];
    for (const [k, v] of rows) { dl.appendChild(node("dt", {}, k)); dl.appendChild(node("dd", {}, v)); }
    card.appendChild(dl);
    return card;
  }

  // The sandboxed document: static markup and script (no props in it); props arrive by postMessage
  // and are written with textContent. Its origin is opaque: it cannot read the page or its token.
  const SANDBOX_DOC = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Refund request</title>
<style>body{font:13px system-ui,sans-serif;margin:6px;color:#1a1a1a}label{display:block;margin:4px 0}
button{margin-top:6px}:focus-visible{outline:3px solid #ffbf00}</style></head><body>
<main><p id="t"></p><label for="r">Reason</label><select id="r"></select>
<label><input type="checkbox" id="c"> I confirm this refund request</label>
<button type="button" id="s">Submit refund request</button><p id="m" role="status"></p></main>
<script>
/* no allow-forms in the sandbox: the button posts the action to the page, nothing is submitted */
let props = null;
window.addEventListener("message", (e) => {
  if (e.source !== window.parent || props || !e.data || e.data.type !== "hexcity-props") return;
  props = e.data.props;
  document.getElementById("t").textContent = props.aria_label;
  const r = document.getElementById("r");
  for (const reason of props.reasons) { const o = document.createElement("option"); o.textContent = reason; r.appendChild(o); }
});
document.getElementById("s").addEventListener("click", () => {
  if (!props) return;
  const m = document.getElementById("m");
  if (!document.getElementById("c").checked) { m.textContent = "Please confirm the request first."; return; }
  m.textContent = "Sent to the chat.";
  parent.postMessage({type: "hexcity-action", action: "request_refund", order_id: props.order_id,
    reason: document.getElementById("r").value, confirmed: true}, "*");
});
<\/script></body></html>`;

  function sandboxed(key, p) {
    const frame = node("iframe", {
      class: "ui-frame", sandbox: "allow-scripts", title: p.aria_label, "data-component": key.split("@")[0],
    });
    frame.srcdoc = SANDBOX_DOC;
    const idempotencyKey = "chat-" + randomHex(16); // one per form: resubmitting it replays, never repeats
    frame.addEventListener("load", () => {
      CHAT.frames.set(frame.contentWindow, { key: key, props: p, idempotencyKey: idempotencyKey });
      frame.contentWindow.postMessage({ type: "hexcity-props", props: p }, "*");
    });
    return frame;
  }

  function randomHex(bytes) {
    const a = new Uint8Array(bytes);
    crypto.getRandomValues(a);
    return Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  window.addEventListener("message", (e) => {
    const origin = CHAT.frames.get(e.source); // only our component frames may speak
    // a sandboxed frame without allow-same-origin has the opaque origin "null"
    if (!origin || e.origin !== "null" || !e.data || e.data.type !== "hexcity-action") return;
    const d = e.data;
    const keys = Object.keys(d).sort().join(",");
    if (keys !== "action,confirmed,order_id,reason,type") return; // exactly the form's message
    if (d.action !== "request_refund" || d.order_id !== origin.props.order_id) return;
    if (!origin.props.reasons.includes(d.reason) || d.confirmed !== true) return;
    userAction({ action: "request_refund", order_id: d.order_id, reason: d.reason },
      { submitUrl: origin.props.submit_url, idempotencyKey: origin.idempotencyKey });
  });

  const RENDERERS = { "order-status-card": orderCard, "fare-breakdown": fareBreakdown };

  function renderComponent(ui, schemas) {
    const spec = schemas.get(ui.component);
    const err = !spec ? ui.component + ": not in the registry" : validate(spec.schema, ui.props, spec.schema, "props");
    if (err) {
      CHAT.rejectedComponents += 1;
      return node("p", { class: "ui-note", "data-rejected": ui.component }, "(a card could not be shown: " + err + ")");
    }
    const name = spec.name;
    if (spec.sandbox === "sandboxed") return sandboxed(spec.key, ui.props);
    const render = RENDERERS[name];
    return render ? render(ui.props) : node("p", { class: "ui-note" }, "(no renderer for " + name + ")");
  }

  // -- conversation ----------------------------------------------------------------------------------
  function userAction(action, form) {
    if (CHAT.actions.length >= MAX_ACTIONS) CHAT.actions.shift();
    CHAT.actions.push(action);
    const text = {
      track: "Where is order " + action.order_id + " now?",
      refund_help: "I want a refund for order " + action.order_id + ".",
      request_refund: "Please refund order " + action.order_id + ", reason: " + action.reason + ". I confirm.",
    }[action.action];
    // a form that names an action route is submitted there; any other form (older servers posted to
    // /answers) only asks in the conversation
    if (action.action === "request_refund" && form && ACTION_ROUTE.test(form.submitUrl)) {
      submitRefund(text, action, form);
    } else if (text) ask(text);
  }

  // The form's submit_url passed the registry's and the schema's checks (internal relative route);
  // only the assistant's own action routes are called from here.
  const ACTION_ROUTE = /^\/assistant\/v1\/actions\/[a-z-]+$/;

  async function submitRefund(text, action, form) {
    if (busy) return;
    busy = true;
    const status = el("chat-status");
    status.textContent = "Submitting the refund request…";
    try {
      const schemas = await loadSchemas();
      addMessage({ who: "you", text: text }, schemas);
      const r = await api(form.submitUrl, {
        method: "POST",
        body: JSON.stringify({ order_id: action.order_id, reason: action.reason, confirmed: true }),
      }, { "Idempotency-Key": form.idempotencyKey });
      const body = await r.json();
      if (!r.ok) {
        addMessage({ who: "support", text: "Sorry, the refund request failed: " + (body.message || r.status)
          + (body.code ? " (" + body.code + ")" : "") }, schemas);
      } else {
        addMessage({ who: "support", text: body.text, outcome: [
          ["Refund", body.refund_id], ["Order", body.order_id],
          ["Amount", money(body.amount_cents) + " " + body.currency], ["Status", body.status],
        ] }, schemas);
      }
      CHAT.refunds = (CHAT.refunds || 0) + (r.ok ? 1 : 0);
      CHAT.answers += 1;
      status.textContent = r.ok ? "Refund requested." : "Refund request failed.";
    } catch (err) {
      status.textContent = err.message;
    } finally {
      busy = false;
    }
  }

  function addMessage(msg, schemas) {
    if (CHAT.messages.length >= MAX_MESSAGES) {
      CHAT.messages.shift();
      const first = el("chat-log").firstElementChild;
      if (first) first.remove();
    }
    CHAT.messages.push(msg);
    const item = node("div", { class: "msg " + msg.who, "data-who": msg.who });
    item.appendChild(node("p", { class: "who" }, msg.who === "you" ? "You" : "Support"));
    for (const line of msg.text.split("\n")) {
      if (line.startsWith("Sources: ")) continue; // shown as the numbered list below
      item.appendChild(node("p", {}, line));
    }
    if (msg.citations && msg.citations.length) {
      const ol = node("ol", { class: "citations", "aria-label": "Sources" });
      for (const c of msg.citations) {
        const li = node("li", { value: String(c.number) });
        const a = node("a", { href: "#kb-" + c.doc_id, "data-doc": c.doc_id, "data-number": String(c.number) },
          c.heading + " (" + c.doc_id + ", v" + c.version + ")");
        a.addEventListener("click", (e) => { e.preventDefault(); showArticle(c.doc_id); });
        li.appendChild(a);
        ol.appendChild(li);
      }
      item.appendChild(ol);
    }
    if (msg.outcome) {
      const dl = node("dl", { class: "ui-facts", "data-outcome": "refund", "aria-label": "Refund outcome" });
      for (const [k, v] of msg.outcome) { dl.appendChild(node("dt", {}, k)); dl.appendChild(node("dd", {}, v)); }
      item.appendChild(dl);
    }
    for (const ui of msg.ui || []) item.appendChild(renderComponent(ui, schemas));
    el("chat-log").appendChild(item);
    item.scrollIntoView({ block: "nearest" });
  }

  async function showArticle(docId) {
    const box = el("chat-article");
    const r = await api("/assistant/v1/articles/" + encodeURIComponent(docId));
    box.replaceChildren();
    if (!r.ok) { box.appendChild(node("p", {}, "Article unavailable (" + r.status + ")")); return; }
    const a = await r.json();
    box.appendChild(node("h3", { id: "kb-" + a.id }, a.title + " (v" + a.version + ")"));
    for (const para of a.body.split(/\n{2,}/).slice(0, 40)) {
      const heading = /^(#{1,6})\s+(.*)$/.exec(para.split("\n")[0]);
      if (!heading) { box.appendChild(node("p", {}, para)); continue; }
      if (heading[1].length > 1) box.appendChild(node("h4", {}, heading[2])); // "#" repeats the title
      const rest = para.split("\n").slice(1).join("\n").trim();
      if (rest) box.appendChild(node("p", {}, rest));
    }
    box.hidden = false;
  }

  // A fare question while two points are picked on the dashboard's map (click, click) asks about
  // that ride: the answer then carries the fare breakdown of a real quote for it.
  const FARE_WORDS = /\b(fares?|prices?|pricing|cost|costs|how much|quotes?|surge)\b/i;
  function chosenRide(question) {
    const points = window.hexcity && window.hexcity.state && window.hexcity.state.routePoints;
    if (!FARE_WORDS.test(question) || !Array.isArray(points) || points.length < 2) return null;
    const [a, b] = points; // [lng, lat] map coordinates
    const ok = (p) => Array.isArray(p) && p.length === 2 && p.every((x) => typeof x === "number" && Number.isFinite(x));
    if (!ok(a) || !ok(b)) return null;
    return { pickup: [a[1], a[0]], dropoff: [b[1], b[0]], product: "standard" };
  }

  async function ask(question) {
    question = question.trim().slice(0, MAX_QUESTION_CHARS);
    if (!question || busy) return;
    busy = true;
    const status = el("chat-status");
    status.textContent = "Asking support…";
    try {
      const schemas = await loadSchemas();
      addMessage({ who: "you", text: question }, schemas);
      const request = { question: question };
      const ride = chosenRide(question);
      if (ride) request.ride = ride;
      const r = await api("/assistant/v1/answers", { method: "POST", body: JSON.stringify(request) });
      const body = await r.json();
      if (!r.ok) {
        addMessage({ who: "support", text: "Sorry, that failed: " + (body.message || r.status) }, schemas);
      } else {
        addMessage({ who: "support", text: body.text, citations: body.citations, ui: body.ui || [] }, schemas);
      }
      CHAT.answers += 1;
      status.textContent = "Answered.";
    } catch (err) {
      status.textContent = err.message;
    } finally {
      busy = false;
    }
  }

  el("chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = el("chat-input");
    const q = input.value;
    input.value = "";
    ask(q);
  });

  // show(): renders a support message as if the assistant had sent it (the browser tests use it to
  // exercise the renderers, the validation and the sandbox with chosen props)
  async function show(msg) { addMessage(Object.assign({ who: "support" }, msg), await loadSchemas()); }

  window.hexcityChat = { state: CHAT, ask: ask, show: show, validate: validate };
})();
