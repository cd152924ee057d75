// tholos console: the bytes a person signs, rebuilt in the browser from the data it displays.
// canonicalJson is tholos.governance._canonical.canonical_json (sorted keys by code point, no
// whitespace, UTF-8, ensure_ascii=False escapes, integers only); parseJson reads integers as
// BigInt (amounts reach 2^256) and refuses what has no single canonical form (floats, duplicate
// keys, lone surrogates). Used by console.js in the page and by the tests under node.
"use strict";

const tholosCanonical = (() => {
  const enc = new TextEncoder();
  const SIMPLE = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };

  function fail(what) {
    throw new Error(`signed data: ${what}`);
  }

  function parseJson(text) {
    let i = 0;
    const ws = () => {
      while (i < text.length && " \t\n\r".includes(text[i])) i++;
    };
    const expect = (s) => {
      if (text.slice(i, i + s.length) !== s) fail(`expected ${s} at ${i}`);
      i += s.length;
    };
    function str() {
      expect('"');
      let out = "";
      for (;;) {
        if (i >= text.length) fail("unterminated string");
        const c = text[i++];
        if (c === '"') break;
        if (c < " ") fail(`control character in a string at ${i - 1}`);
        if (c !== "\\") {
          out += c;
          continue;
        }
        const e = text[i++];
        if (Object.hasOwn(SIMPLE, e)) out += SIMPLE[e];
        else if (e === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(i, i + 4))) {
          out += String.fromCharCode(parseInt(text.slice(i, i + 4), 16));
          i += 4;
        } else fail(`bad escape at ${i - 1}`);
      }
      if (!out.isWellFormed()) fail("a string holds a lone surrogate");
      return out;
    }
    function value() {
      ws();
      const c = text[i];
      if (c === "{") {
        i++;
        const obj = Object.create(null);
        ws();
        if (text[i] === "}") {
          i++;
          return obj;
        }
        for (;;) {
          ws();
          const k = str();
          if (Object.hasOwn(obj, k)) fail(`duplicate key ${JSON.stringify(k)}`);
          ws();
          expect(":");
          obj[k] = value();
          ws();
          if (text[i] === ",") i++;
          else if (text[i] === "}") {
            i++;
            return obj;
          } else fail(`expected , or } at ${i}`);
        }
      }
      if (c === "[") {
        i++;
        const arr = [];
        ws();
        if (text[i] === "]") {
          i++;
          return arr;
        }
        for (;;) {
          arr.push(value());
          ws();
          if (text[i] === ",") i++;
          else if (text[i] === "]") {
            i++;
            return arr;
          } else fail(`expected , or ] at ${i}`);
        }
      }
      if (c === '"') return str();
      for (const [word, v] of [["true", true], ["false", false], ["null", null]]) {
        if (text.startsWith(word, i)) {
          i += word.length;
          return v;
        }
      }
      const m = /^-?(0|[1-9][0-9]*)/.exec(text.slice(i, i + 800));
      if (!m) fail(`unexpected input at ${i}`);
      i += m[0].length;
      if (i < text.length && ".eE".includes(text[i])) fail("floats are not allowed");
      return BigInt(m[0]);
    }
    const v = value();
    ws();
    if (i !== text.length) fail(`trailing data at ${i}`);
    return v;
  }

  function byCodePoint(a, b) {
    const A = Array.from(a, (ch) => ch.codePointAt(0));
    const B = Array.from(b, (ch) => ch.codePointAt(0));
    for (let k = 0; k < Math.min(A.length, B.length); k++) if (A[k] !== B[k]) return A[k] - B[k];
    return A.length - B.length;
  }

  function canonicalJson(v) {
    if (v === null) return "null";
    if (v === true || v === false) return String(v);
    if (typeof v === "bigint") return v.toString();
    if (typeof v === "number") {
      if (!Number.isSafeInteger(v)) fail(`not an exact integer: ${v}`);
      return String(v);
    }
    if (typeof v === "string") {
      if (!v.isWellFormed()) fail("a string holds a lone surrogate");
      return JSON.stringify(v); // the escapes of Python's json.dumps(ensure_ascii=False)
    }
    if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
    if (typeof v === "object") {
      const keys = Object.keys(v).sort(byCodePoint);
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(",")}}`;
    }
    return fail(`no JSON form for a ${typeof v}`);
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  /** SHA-256(tag || 0 || canonical(value)): tholos.governance._canonical.tagged_digest. */
  async function taggedDigest(tag, value) {
    return sha256(concat(enc.encode(tag), new Uint8Array([0]), enc.encode(canonicalJson(value))));
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function unhex(text) {
    if (!/^([0-9a-f]{2})*$/.test(text)) fail("not lowercase hex");
    const out = new Uint8Array(text.length / 2);
    for (let k = 0; k < out.length; k++) out[k] = parseInt(text.substr(2 * k, 2), 16);
    return out;
  }

  /** tholos.governance.requests.request_digest: the digest initiator and approvers sign. */
  async function requestDigest(clusterId, intent, payload) {
    const fields = Object.assign(Object.create(null), intent);
    if (fields.taproot !== true) {
      delete fields.taproot;
      delete fields.merkle_root;
    }
    return taggedDigest("tholos/request/v1", {
      format: 1n,
      kind: "signing_request",
      cluster_id: clusterId,
      intent: fields,
      payload_sha256: hex(await sha256(payload)),
    });
  }

  /** What each signed action signs: tag || digest, or a tagged digest of the document. */
  const messages = {
    approval: (digest) => concat(enc.encode("tholos/approval/v1"), digest),
    initiation: (digest) => concat(enc.encode("tholos/initiation/v1"), digest),
    cancel: (digest) => concat(enc.encode("tholos/cancel/v1"), digest),
    rejection: (digest) => concat(enc.encode("tholos/rejection/v1"), digest),
    killSwitch: (engage) => taggedDigest("tholos/kill-switch/v1", engage),
    async governance(doc) {
      return concat(
        enc.encode("tholos/governance/v1/signature"),
        await taggedDigest("tholos/governance/v1", doc),
      );
    },
    governanceDigest: (doc) => taggedDigest("tholos/governance/v1", doc),
    login: (clusterId, challenge) =>
      concat(
        enc.encode("tholos/console-login/v1"),
        new Uint8Array([0]),
        enc.encode(clusterId),
        new Uint8Array([0]),
        challenge,
      ),
    audit: (clusterId, issuedAt) =>
      taggedDigest("tholos/audit-export/v1", { cluster_id: clusterId, issued_at: issuedAt }),
  };

  return { parseJson, canonicalJson, requestDigest, messages, sha256, hex, unhex };
})();

if (typeof module !== "undefined") module.exports = tholosCanonical;
