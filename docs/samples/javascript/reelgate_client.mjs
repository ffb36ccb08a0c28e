// reelgate's REST API from JavaScript (Node 18+: built-in fetch and crypto, no packages).
//
//   REELGATE_API_KEY=rg_... node reelgate_client.mjs estimate | generate | poll ID | download ID OUT
//   WEBHOOK_SECRET=whsec_... WEBHOOK_ID=... WEBHOOK_TIMESTAMP=... WEBHOOK_SIGNATURE=... \
//       node reelgate_client.mjs verify-webhook BODY_FILE
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";

const URL = process.env.REELGATE_URL ?? "http://127.0.0.1:8000";
const ORDER = { model: process.env.REELGATE_MODEL ?? "sandbox-t2v", duration: 2, resolution: "480p" };
const DONE = new Set(["succeeded", "failed", "canceled", "expired"]);

async function api(path, init = {}) {
  const response = await fetch(URL + path, {
    ...init,
    headers: { Authorization: `Bearer ${process.env.REELGATE_API_KEY}`, ...init.headers },
  });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status} ${await response.text()}`);
  return response;
}

const postJson = (path, body, headers = {}) =>
  api(path, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify(body) });

// The price of an order, without starting it.
export async function estimate() {
  return (await postJson("/api/v1/estimate", ORDER)).json();
}

// Start a generation; the Idempotency-Key makes a retried request start only one job.
export async function generate(prompt = "a paper boat drifting on a pond") {
  const response = await postJson("/api/v1/generations", { ...ORDER, prompt }, { "Idempotency-Key": randomUUID() });
  return (await response.json()).id;
}

// Wait for a generation to end (webhooks tell you sooner; see verifyWebhook).
export async function poll(id, timeoutMs = 600_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const generation = await (await api(`/api/v1/generations/${id}`)).json();
    if (DONE.has(generation.status) || Date.now() > deadline) return generation;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

// Download the finished video to a file; returns its size.
export async function download(id, path) {
  const bytes = Buffer.from(await (await api(`/api/v1/generations/${id}/content`)).arrayBuffer());
  writeFileSync(path, bytes);
  return bytes.length;
}

// The event of a genuine, recent delivery (Standard Webhooks); throws otherwise.
export function verifyWebhook(secret, headers, body, toleranceSeconds = 300) {
  const timestamp = Number(headers["webhook-timestamp"]);
  if (!Number.isInteger(timestamp) || Math.abs(Date.now() / 1000 - timestamp) > toleranceSeconds) {
    throw new Error("stale timestamp");
  }
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const signed = Buffer.concat([Buffer.from(`${headers["webhook-id"]}.${timestamp}.`), body]);
  const expected = createHmac("sha256", key).update(signed).digest();
  for (const entry of headers["webhook-signature"].split(" ")) {
    const [version, signature] = entry.split(",");
    const given = Buffer.from(signature ?? "", "base64");
    if (version === "v1" && given.length === expected.length && timingSafeEqual(given, expected)) {
      return JSON.parse(body.toString("utf8"));
    }
  }
  throw new Error("signature mismatch");
}

async function main([command, ...args]) {
  if (command === "estimate") console.log(JSON.stringify(await estimate()));
  else if (command === "generate") console.log(await generate());
  else if (command === "poll") console.log((await poll(args[0])).status);
  else if (command === "download") console.log(`saved ${await download(args[0], args[1])} bytes to ${args[1]}`);
  else if (command === "verify-webhook") {
    const headers = {
      "webhook-id": process.env.WEBHOOK_ID,
      "webhook-timestamp": process.env.WEBHOOK_TIMESTAMP,
      "webhook-signature": process.env.WEBHOOK_SIGNATURE,
    };
    try {
      const event = verifyWebhook(process.env.WEBHOOK_SECRET, headers, readFileSync(args[0]));
      console.log(`genuine: ${event.type} ${event.data.id}`);
    } catch (error) {
      console.error(error.message);
      process.exitCode = 1;
    }
  } else {
    console.error("usage: node reelgate_client.mjs estimate | generate | poll ID | download ID OUT | verify-webhook FILE");
    process.exitCode = 2;
  }
}

await main(process.argv.slice(2));
