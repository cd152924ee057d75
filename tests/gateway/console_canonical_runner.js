// Reads one JSON command per line, answers one JSON line: the console's canonical.js under node.
"use strict";
const readline = require("node:readline");
const c = require(process.argv[2]);

async function run(cmd) {
  if (cmd.op === "canonical") return c.canonicalJson(c.parseJson(cmd.text));
  if (cmd.op === "request_digest") {
    const d = await c.requestDigest(cmd.cluster_id, c.parseJson(cmd.intent), c.unhex(cmd.payload));
    return c.hex(d);
  }
  if (cmd.op === "kill_switch") return c.hex(await c.messages.killSwitch(c.parseJson(cmd.text)));
  if (cmd.op === "governance") return c.hex(await c.messages.governance(c.parseJson(cmd.text)));
  if (cmd.op === "audit") return c.hex(await c.messages.audit(cmd.cluster_id, BigInt(cmd.issued_at)));
  if (cmd.op === "digest_message") return c.hex(c.messages[cmd.kind](c.unhex(cmd.digest)));
  if (cmd.op === "login") return c.hex(c.messages.login(cmd.cluster_id, c.unhex(cmd.challenge)));
  throw new Error(`unknown op ${cmd.op}`);
}

const rl = readline.createInterface({ input: process.stdin });
const queue = [];
let busy = Promise.resolve();
rl.on("line", (line) => {
  busy = busy.then(async () => {
    try {
      process.stdout.write(JSON.stringify({ ok: await run(JSON.parse(line)) }) + "\n");
    } catch (e) {
      process.stdout.write(JSON.stringify({ error: String(e.message || e) }) + "\n");
    }
  });
});
