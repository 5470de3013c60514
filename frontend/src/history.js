// Revisions (what changed between any two, as a spec diff), events and replica logs.
import { useState } from "preact/hooks";
import { getText, modelPath } from "./api.js";
import { diffLines, since, toYaml } from "./format.js";
import { html } from "./html.js";
import { DiffView } from "./parts.js";
import { usePoll } from "./polling.js";

export function Revisions({ model, revisions }) {
  const items = revisions || [];
  const [pair, setPair] = useState([null, null]);
  const names = items.map((r) => r.name);
  const from = pair[0] || names.at(-2) || names[0];
  const to = pair[1] || names.at(-1);
  const spec = (name) => items.find((r) => r.name === name)?.spec;
  const roles = { [model.status?.stableRevision]: "stable", [model.status?.canaryRevision]: "canary" };
  return html`<section aria-labelledby="revisions-title" class="panel">
    <h2 id="revisions-title">Revisions</h2>
    <table>
      <thead><tr><th scope="col">Revision</th><th scope="col">Created</th><th scope="col">Digest</th><th scope="col">Role</th></tr></thead>
      <tbody>${items.map((r) => html`<tr>
        <th scope="row">${r.name}</th><td title=${r.created}>${since(r.created)}</td>
        <td><code>${r.digest.slice(0, 12)}</code></td><td>${roles[r.name] || ""}</td>
      </tr>`)}</tbody>
    </table>
    ${items.length > 1 ? html`<div class="row">
      <label>From <select value=${from} onChange=${(e) => setPair([e.target.value, to])}>${names.map((n) => html`<option>${n}</option>`)}</select></label>
      <label>To <select value=${to} onChange=${(e) => setPair([from, e.target.value])}>${names.map((n) => html`<option>${n}</option>`)}</select></label>
    </div>
    <${DiffView} label=${`Spec changes from ${from} to ${to}`} lines=${diffLines(toYaml(spec(from) || {}), toYaml(spec(to) || {}))} />` : ""}
  </section>`;
}

export function Events({ events }) {
  return html`<section aria-labelledby="events-title" class="panel">
    <h2 id="events-title">Events</h2>
    ${events?.length ? html`<table class="events">
      <thead><tr><th scope="col">When</th><th scope="col">Type</th><th scope="col">Reason</th><th scope="col">Message</th></tr></thead>
      <tbody>${[...events].reverse().map((e) => html`<tr class=${e.type === "Warning" ? "warning" : ""}>
        <td title=${e.lastTimestamp}>${since(e.lastTimestamp)}</td><td>${e.type}</td><td>${e.reason}</td><td>${e.message}</td>
      </tr>`)}</tbody>
    </table>` : html`<p class="muted">No events.</p>`}
  </section>`;
}

export function Logs({ model }) {
  const { namespace, name } = model.metadata;
  const [revision, setRevision] = useState("");
  const query = `?tailLines=200${revision ? `&revision=${encodeURIComponent(revision)}` : ""}`;
  const { data, error } = usePoll(() => getText(`${modelPath(namespace, name)}/logs${query}`), [namespace, name, query], 5000);
  return html`<section aria-labelledby="logs-title" class="panel">
    <h2 id="logs-title">Replica logs</h2>
    <label>Revision <select value=${revision} onChange=${(e) => setRevision(e.target.value)}>
      <option value="">all</option>
      ${(model.status?.revisions || []).map((r) => html`<option>${r.name}</option>`)}
    </select></label>
    <pre class="logs" tabindex="0" aria-label="Replica logs">${error ? error.message : data || "(no log lines yet)"}</pre>
  </section>`;
}
