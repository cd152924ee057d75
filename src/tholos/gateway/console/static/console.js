// tholos console: the user's Ed25519 key is used here, in the browser, and never leaves it.
// The key file (32 bytes, hex) is imported once into WebCrypto as a NON-EXTRACTABLE key and kept
// in this browser's IndexedDB; the server only ever receives signatures over the exact bytes the
// governance objects define (approval, initiation, cancel, kill switch, document, audit, login).
"use strict";

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

async function sign(user, messageHex) {
  const key = await loadKey(user);
  if (!key) throw new Error(`no key for ${user} in this browser: log in again with your key file`);
  const sig = await crypto.subtle.sign({ name: "Ed25519" }, key, fromHex(messageHex));
  return toHex(new Uint8Array(sig));
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
    const signature = await sign(user, c.message);
    go(await post(form.action, { user, challenge: c.challenge, signature }));
  },
  async json(form) {
    go(await post(form.action, fields(form)));
  },
  async transfer(form) {
    const prepared = await post(form.action, fields(form));
    const review = document.getElementById("review");
    review.innerHTML = prepared.intent_html;
    document.getElementById("review-digest").textContent = prepared.digest;
    const box = document.getElementById("review-box");
    box.hidden = false;
    const button = document.getElementById("submit-transfer");
    button.dataset.draft = prepared.draft_id;
    button.dataset.message = prepared.message;
    box.focus();
    say("Check the transaction below, then sign it with your key.");
  },
  async submitTransfer(button) {
    const signature = await sign(me(), button.dataset.message);
    go(await post(button.dataset.url, { draft_id: button.dataset.draft, signature }));
  },
  async signed(button) {
    const signature = await sign(me(), button.dataset.message);
    go(await post(button.dataset.url, { signature }));
  },
  async engage(form) {
    const p = await post(form.action + "/prepare", fields(form));
    const signature = await sign(me(), p.message);
    go(await post(form.action + "/engage", { engage: p.engage, signature }));
  },
  async release(button) {
    const p = await post(button.dataset.url, {});
    const signature = await sign(me(), p.message);
    const out = await post(button.dataset.sign, { proposal_id: p.proposal_id, signature });
    say(`Release proposal ${p.proposal_id}: ${out.status}. Another admin signs it under Policies.`);
    window.setTimeout(() => go(out), 1500);
  },
  async proposal(button) {
    const signature = await sign(me(), button.dataset.message);
    go(await post(button.dataset.url, { proposal_id: button.dataset.proposal, signature }));
  },
  async audit(form) {
    const p = await post(form.action + "/prepare", {});
    const signature = await sign(me(), p.message);
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

window.tholosConsole = { sign, loadKey };
