// tholos console: the user's Ed25519 key is used here, in the browser, and never leaves it.
// The key file (32 bytes, hex) is imported once into WebCrypto as a NON-EXTRACTABLE key and kept
// in this browser's IndexedDB; the server only ever receives signatures over the exact bytes the
// governance objects define (approval, rejection, initiation, cancel, kill switch, document, audit, login).
// Those bytes are rebuilt HERE (canonical.js) from the data the page shows, which is rendered from
// that same data: a digest or message from the server that differs is refused, nothing is sent.
"use strict";

const C = tholosCanonical;

const DB_NAME = "tholos-console";
const STORE = "keys";
const PKCS8_ED25519 = "302e020100300506032b657004220420"; // RFC 8410 PrivateKeyInfo prefix

function openDb() {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(DB_NAME, 1);
    r.onupgradeneeded = () => r.result.createObjectStore(STORE);
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

async function storeKey(user, key) {
  const db = await openDb();
  await new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, "readwrite");
    tx.objectStore(STORE).put(key, user);
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
  });
}

async function loadKey(user) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    const r = db.transaction(STORE).objectStore(STORE).get(user);
    r.onsuccess = () => resolve(r.result || null);
    r.onerror = () => reject(r.error);
  });
}

function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function fromHex(text) {
  if (!/^([0-9a-f]{2})*$/i.test(text)) throw new Error("not hex");
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
  return out;
}

async function importKeyFile(file) {
  const text = (await file.text()).trim();
  if (!/^[0-9a-f]{64}$/i.test(text)) {
    throw new Error("a key file holds 64 hex digits (the 32-byte Ed25519 private key)");
  }
  const der = fromHex(PKCS8_ED25519 + text);
  try {
    return await crypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, false, ["sign"]);
  } finally {
    der.fill(0);
  }
}

async function sign(user, message) {
  const key = await loadKey(user);
  if (!key) throw new Error(`no key for ${user} in this browser: log in again with your key file`);
  const bytes = typeof message === "string" ? fromHex(message) : message;
  const sig = await crypto.subtle.sign({ name: "Ed25519" }, key, bytes);
  return toHex(new Uint8Array(sig));
}

/** Refuse to sign when what the server says we sign is not what this page rebuilt. */
function same(what, fromServer, rebuilt) {
  if (fromServer !== rebuilt) {
    throw new Error(
      `refused to sign: the ${what} the server gave (${fromServer}) is not the one of what this ` +
        `page shows (${rebuilt}); nothing was sent`,
    );
  }
}

function embedded(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`this page has no ${id} data`);
  return C.parseJson(el.textContent);
}

// -- showing signed data, from the same parsed JSON that is hashed ------------------------------
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : String(k));
  return e;
}

function facts(rows, cls) {
  const dl = el("dl", { class: cls || "facts" });
  for (const [term, value, ddClass] of rows) {
    dl.append(el("dt", {}, term), el("dd", ddClass ? { class: ddClass } : {}, value));
  }
  return dl;
}

function table(caption, heads, rows, empty) {
  const body = el("tbody");
  for (const [cls, cells] of rows) {
    const tds = cells.map(([c, v]) => el("td", c ? { class: c } : {}, v));
    body.append(el("tr", cls ? { class: cls } : {}, ...tds));
  }
  if (!rows.length && empty) {
    body.append(el("tr", {}, el("td", { colspan: String(heads.length) }, empty)));
  }
  const head = el("tr", {}, ...heads.map((h) => el("th", { scope: "col" }, h)));
  return el("table", {}, el("caption", {}, caption), el("thead", {}, head), body);
}

function renderIntent(box, intent) {
  const tx = intent.transaction;
  const rows = [
    ["Request", intent.request_id],
    ["Initiator", intent.initiator],
    ["Chain", tx ? `${intent.chain} (${tx.network}, ${tx.address_type})` : intent.chain, "chain"],
    ["Key", `${intent.key_id} at ${intent.derivation_path}`],
  ];
  if (tx) {
    rows.push(["Kind", tx.kind], ["Fee", `${tx.fee} ${tx.fee_asset} (base units)`, "fee"]);
  } else {
    rows.push(["Asset", intent.asset], ["Destination", intent.destination]);
    rows.push(["Amount", intent.amount]);
  }
  if (intent.taproot === true) {
    rows.push(["Taproot", `BIP341 output key, merkle root ${intent.merkle_root ?? "none"}`]);
  }
  if (intent.memo) rows.push(["Memo", intent.memo]);
  rows.push(["Valid", `${intent.created_at} to ${intent.expires_at} (unix time)`]);
  const parts = [facts(rows, "facts intent")];
  if (tx) {
    const heads = ["Action", "Asset", "From", "To", "Amount (base units)"];
    const moves = (list, cls) =>
      list.map((t) => [
        cls,
        [["", t.action], ["", t.asset], ["from", t.source], ["to", t.to], ["amount", t.amount]],
      ]);
    parts.push(
      table("Every destination and amount", heads, moves(tx.transfers, "destination")),
      table("Change (back to this wallet)", heads, moves(tx.change, ""), "No change output."),
    );
    if (tx.calls.length) {
      const calls = tx.calls.map((c) => ["", [["", c.contract], ["", c.selector], ["", c.value]]]);
      const what = "Contract calls not decoded into transfers";
      parts.push(table(what, ["Contract", "Selector", "Value"], calls));
    }
    const details = Object.keys(tx.details).sort();
    if (details.length) parts.push(facts(details.map((k) => [k, tx.details[k]])));
  }
  box.replaceChildren(...parts);
}

function pretty(v, pad) {
  const p = pad || "";
  if (Array.isArray(v)) {
    if (!v.length) return "[]";
    const items = v.map((x) => `${p}  ${pretty(x, `${p}  `)}`);
    return `[\n${items.join(",\n")}\n${p}]`;
  }
  if (v !== null && typeof v === "object") {
    const keys = Object.keys(v).sort();
    if (!keys.length) return "{}";
    const items = keys.map((k) => `${p}  ${JSON.stringify(k)}: ${pretty(v[k], `${p}  `)}`);
    return `{\n${items.join(",\n")}\n${p}}`;
  }
  return C.canonicalJson(v);
}

/** A governance document: what changes from the one in force, then the whole document. */
function renderDocument(box, doc) {
  const parts = [];
  const current = document.getElementById("governance-current") && embedded("governance-current");
  if (current) {
    const changed = Object.keys(doc)
      .filter((k) => !["version", "prev_hash", "issued_at", "kind"].includes(k))
      .filter((k) => !(k in current) || C.canonicalJson(doc[k]) !== C.canonicalJson(current[k]));
    const text = `Changes from version ${current.version}: ${changed.join(", ") || "none"}.`;
    parts.push(el("p", { class: "changes" }, text));
  }
  parts.push(el("pre", { class: "document" }, pretty(doc)));
  box.replaceChildren(...parts);
}

function renderAll() {
  for (const box of document.querySelectorAll(".intent-view[data-source]")) {
    renderIntent(box, embedded(box.dataset.source).intent);
  }
  for (const box of document.querySelectorAll(".document-view[data-source]")) {
    renderDocument(box, embedded(box.dataset.source));
  }
}

/** The request digest this page computes from its embedded request (hex). */
async function digestOf(request) {
  return C.hex(await C.requestDigest(request.cluster_id, request.intent, C.unhex(request.payload)));
}

/** The new document proposes to release the kill switch, and changes nothing else. */
async function checkRelease(doc) {
  const cur = embedded("governance-current");
  const expect = {
    kind: "governance",
    cluster_id: cur.cluster_id,
    version: cur.version + 1n,
    prev_hash: C.hex(await C.messages.governanceDigest(cur)),
    release_kill_switch: true,
    users: cur.users,
    admin_quorum: cur.admin_quorum,
    policy: cur.policy,
  };
  for (const [k, v] of Object.entries(expect)) {
    if (!(k in doc) || C.canonicalJson(doc[k]) !== C.canonicalJson(v)) {
      throw new Error(`refused to sign: the release proposal changes ${k}; nothing was sent`);
    }
  }
}

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

async function post(url, body) {
  const r = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
    body: JSON.stringify(body || {}),
  });
  const data = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) {
    const e = data.error;
    const text = typeof e === "string" ? e : e && (e.message || e.code);
    throw new Error(text || `HTTP ${r.status}`);
  }
  return data;
}

function fields(form) {
  const out = {};
  for (const [k, v] of new FormData(form)) if (typeof v === "string") out[k] = v;
  return out;
}

function say(text, isError) {
  const el = document.getElementById("status");
  if (!el) return;
  el.textContent = text;
  el.classList.toggle("error", Boolean(isError));
}

function me() {
  return document.body.dataset.user;
}

function go(data) {
  if (data && data.redirect) window.location.assign(data.redirect);
}

const handlers = {
  async login(form) {
    const user = form.elements.user.value.trim();
    const file = form.elements.keyfile.files[0];
    if (file) await storeKey(user, await importKeyFile(file));
    form.elements.keyfile.value = "";
    const c = await post(form.action + "/challenge", { user });
    const challenge = C.unhex(c.challenge);
    if (challenge.length !== 32) throw new Error("refused to sign: a login challenge is 32 bytes");
    const message = C.messages.login(c.cluster_id, challenge);
    same("login message", c.message, C.hex(message));
    const signature = await sign(user, message);
    go(await post(form.action, { user, challenge: c.challenge, signature }));
  },
  async json(form) {
    go(await post(form.action, fields(form)));
  },
  async transfer(form) {
    const prepared = await post(form.action, fields(form));
    const request = C.parseJson(prepared.request);
    if (request.intent.initiator !== me()) {
      throw new Error("refused to sign: this request is not in your name");
    }
    renderIntent(document.getElementById("review"), request.intent);
    const digest = await digestOf(request);
    same("request digest", prepared.digest, digest);
    document.getElementById("review-digest").textContent = digest;
    const box = document.getElementById("review-box");
    box.hidden = false;
    const button = document.getElementById("submit-transfer");
    button.dataset.draft = prepared.draft_id;
    button.dataset.digest = digest;
    box.focus();
    say("Check the transaction below, then sign it with your key.");
  },
  async submitTransfer(button) {
    const signature = await sign(me(), C.messages.initiation(C.unhex(button.dataset.digest)));
    go(await post(button.dataset.url, { draft_id: button.dataset.draft, signature }));
  },
  async digestSigned(button) {
    // approval, rejection or cancel: tag || the digest of the request this page shows
    const digest = await digestOf(embedded(button.dataset.source));
    same("request digest", button.dataset.digest, digest);
    const signature = await sign(me(), C.messages[button.dataset.kind](C.unhex(digest)));
    go(await post(button.dataset.url, { signature }));
  },
  async engage(form) {
    const reason = form.elements.reason.value;
    const p = await post(form.action + "/prepare", fields(form));
    const e = C.parseJson(p.engage);
    const cur = embedded("governance-current");
    const want = { kind: "kill_switch_engage", signer: me(), reason, cluster_id: cur.cluster_id };
    for (const [k, v] of Object.entries(want)) {
      if (e[k] !== v) throw new Error(`refused to sign: the engage document's ${k} is not ${v}`);
    }
    const message = await C.messages.killSwitch(e);
    same("kill switch message", p.message, C.hex(message));
    const signature = await sign(me(), message);
    go(await post(form.action + "/engage", { engage: C.canonicalJson(e), signature }));
  },
  async release(button) {
    const p = await post(button.dataset.url, {});
    const doc = C.parseJson(p.document);
    await checkRelease(doc);
    const message = await C.messages.governance(doc);
    same("governance signing message", p.message, C.hex(message));
    const signature = await sign(me(), message);
    const out = await post(button.dataset.sign, { proposal_id: p.proposal_id, signature });
    say(`Release proposal ${p.proposal_id}: ${out.status}. Another admin signs it under Policies.`);
    window.setTimeout(() => go(out), 1500);
  },
  async proposal(button) {
    const message = await C.messages.governance(embedded(button.dataset.source));
    same("governance signing message", button.dataset.message, C.hex(message));
    const signature = await sign(me(), message);
    go(await post(button.dataset.url, { proposal_id: button.dataset.proposal, signature }));
  },
  async audit(form) {
    const p = await post(form.action + "/prepare", {});
    const message = await C.messages.audit(p.cluster_id, BigInt(p.issued_at));
    same("audit export message", p.message, C.hex(message));
    const signature = await sign(me(), message);
    const out = await post(form.action, { issued_at: p.issued_at, signature });
    document.getElementById("audit-results").innerHTML = out.html;
    say("Audit chains read and verified.");
  },
  async logout(form) {
    go(await post(form.action, {}));
  },
};

async function run(name, el) {
  const busy = el.querySelector("button") || el;
  busy.disabled = true;
  try {
    say("Working…");
    await handlers[name](el);
  } catch (e) {
    say(e.message || String(e), true);
  } finally {
    busy.disabled = false;
  }
}

document.addEventListener("submit", (ev) => {
  const form = ev.target;
  const name = form.dataset.action;
  if (name && handlers[name]) {
    ev.preventDefault();
    run(name, form);
  }
});

document.addEventListener("click", (ev) => {
  const button = ev.target.closest("button[data-action]");
  if (button && handlers[button.dataset.action]) {
    ev.preventDefault();
    run(button.dataset.action, button);
  }
});

function renderOrSay() {
  try {
    renderAll();
  } catch (e) {
    say(`cannot show the signed data: ${e.message || e}`, true);
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", renderOrSay);
else renderOrSay();
document.addEventListener("htmx:afterSettle", renderOrSay);

window.tholosConsole = {
  sign,
  loadKey,
  digestOf: async (id) => digestOf(embedded(id)),
};
