// Send one inference from the page, through the gateway, and show the answer and its trace id.
// The portal starts the trace itself (a W3C traceparent), so the id is known whether or not the
// platform exports traces; with OTLP on, that is the trace to look up.
import { useEffect, useState } from "preact/hooks";
import { authHeaders } from "./api.js";
import { html } from "./html.js";

const hex = (bytes) => [...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");

function kinds(model) {
  const protocols = model.spec.protocols || [];
  const task = model.spec.task;
  const found = [];
  if (protocols.includes("openai") && (task === "chat" || task === "text-generation")) found.push("chat");
  if (protocols.includes("openai") && task === "embedding") found.push("embeddings");
  if (protocols.includes("v2") || !protocols.length) found.push("v2");
  return found;
}

// A v2 request with zeros of each input's shape (dynamic dimensions as 1), from the metadata.
async function v2Example(gateway, key) {
  const reply = await fetch(`${gateway}/v2/models/${key}`, { headers: authHeaders() });
  if (!reply.ok) return { inputs: [] };
  const meta = await reply.json();
  return {
    inputs: (meta.inputs || []).map((input) => {
      const shape = input.shape.map((d) => (d < 0 ? 1 : d));
      const size = shape.reduce((a, b) => a * b, 1);
      const zero = input.datatype === "BYTES" ? "text" : input.datatype === "BOOL" ? false : 0;
      return { name: input.name, shape, datatype: input.datatype, data: new Array(size).fill(zero) };
    }),
  };
}

// One input per line: a request stays short enough to read and edit.
const readable = (body) => `{"inputs": [\n${body.inputs.map((i) => `  ${JSON.stringify(i)}`).join(",\n")}\n]}`;

function request(kind, gateway, key, text) {
  if (kind === "chat") {
    const body = { model: key, messages: [{ role: "user", content: text }], max_tokens: 64 };
    return [`${gateway}/v1/chat/completions`, JSON.stringify(body)];
  }
  if (kind === "embeddings") return [`${gateway}/v1/embeddings`, JSON.stringify({ model: key, input: text })];
  return [`${gateway}/v2/models/${key}/infer`, text];
}

export function TryIt({ model, gateway }) {
  const key = `${model.metadata.namespace}/${model.metadata.name}`;
  const offered = kinds(model);
  const [kind, setKind] = useState(offered[0]);
  const [text, setText] = useState("");
  const [result, setResult] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (kind === "v2" && gateway) v2Example(gateway, key).then((body) => setText(readable(body)));
    else setText(kind === "chat" ? "Hello!" : "A sentence to embed.");
  }, [kind, gateway, key]);
  const send = async (event) => {
    event.preventDefault();
    setBusy(true);
    const traceId = hex(16);
    const [url, body] = request(kind, gateway, key, text);
    const started = performance.now();
    try {
      const reply = await fetch(url, {
        method: "POST",
        body,
        headers: { "Content-Type": "application/json", traceparent: `00-${traceId}-${hex(8)}-01`, ...authHeaders() },
      });
      const raw = await reply.text();
      let shown = raw;
      let answer = null;
      try {
        const document = JSON.parse(raw);
        shown = JSON.stringify(document, null, 2);
        answer = document.choices?.[0]?.message?.content ?? null;
      } catch {
        // not JSON: show it as it came
      }
      setResult({ status: reply.status, ok: reply.ok, body: shown, answer, traceId, ms: performance.now() - started });
    } catch (error) {
      setResult({ status: 0, ok: false, body: `The gateway at ${gateway} did not answer: ${error.message}`, traceId });
    }
    setBusy(false);
  };
  return html`<section aria-labelledby="try-title" class="panel">
    <h2 id="try-title">Try it</h2>
    <form onSubmit=${send}>
      ${offered.length > 1 ? html`<label>Protocol <select value=${kind} onChange=${(e) => setKind(e.target.value)}>
        ${offered.map((k) => html`<option value=${k}>${k === "v2" ? "Open Inference Protocol v2" : `OpenAI ${k}`}</option>`)}
      </select></label>` : ""}
      <label for="try-body">${kind === "v2" ? "Request body (JSON)" : "Message"}</label>
      <textarea id="try-body" rows=${kind === "v2" ? 8 : 3} value=${text} onInput=${(e) => setText(e.target.value)} spellcheck="false"></textarea>
      <button type="submit" class="primary" disabled=${busy || !gateway}>Send</button>
    </form>
    ${result ? html`<div class="result" aria-live="polite">
      <p><span class=${`badge ${result.ok ? "ok" : "bad"}`}>${result.status || "no answer"}</span>
        ${result.ms ? ` in ${result.ms.toFixed(0)} ms` : ""} · trace id <code data-testid="trace-id">${result.traceId}</code></p>
      ${result.answer !== null && result.answer !== undefined ? html`<p class="answer"><strong>Answer:</strong> ${result.answer}</p>` : ""}
      <pre class="response" data-testid="try-response">${result.body}</pre>
    </div>` : ""}
  </section>`;
}
