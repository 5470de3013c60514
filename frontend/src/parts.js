// Small pieces several pages share.
import { html } from "./html.js";
import { colour } from "./charts.js";
import { hunks } from "./format.js";

export function Ready({ condition }) {
  if (!condition) return html`<span class="badge unknown">Unknown</span>`;
  const moving = /Progress/.test(condition.reason || "");
  const kind = condition.status === "True" ? "ok" : moving ? "progress" : condition.status === "False" ? "bad" : "unknown";
  const text = condition.status === "True" ? "Ready" : condition.reason || "Not ready";
  return html`<span class=${`badge ${kind}`} title=${condition.message || ""}>${text}</span>`;
}

export const TrafficText = ({ revisions }) =>
  revisions.filter((r) => r.traffic).map((r) => `${r.name} ${r.traffic}%`).join(", ") || "–";

// The traffic split as a bar: one segment per revision that takes traffic.
export function TrafficBar({ revisions }) {
  const taking = revisions.filter((r) => r.traffic);
  if (!taking.length) return html`<p class="muted">No revision takes traffic yet.</p>`;
  return html`<div class="traffic" role="img" aria-label=${`Traffic: ${TrafficText({ revisions })}`}>
    ${taking.map((r) => html`<div class="segment" style=${`flex: ${r.traffic}; background: ${colour(revisions.indexOf(r))}`}>
      ${r.name} ${r.traffic}%
    </div>`)}
  </div>`;
}

export function ErrorNote({ error }) {
  if (!error) return null;
  return html`<div class="error" role="alert">
    <p>${error.message}</p>
    ${error.causes?.length ? html`<ul>${error.causes.map((c) => html`<li><code>${c.field}</code>: ${c.message}</li>`)}</ul>` : ""}
  </div>`;
}

const LINE_CLASS = { "+": "add", "-": "del", "…": "skip" };

// A spec diff: changed lines with a little context around them.
export function DiffView({ lines, label }) {
  return html`<pre class="diff" aria-label=${label}>${hunks(lines).map(
    ([kind, text]) => html`<span class=${LINE_CLASS[kind] || ""}>${kind === "…" ? "  …" : `${kind} ${text}`}\n</span>`,
  )}</pre>`;
}

// Figures as tiles: [key, label, value, note] each; `data-figure` names the figure.
export function Tiles({ tiles }) {
  return html`<dl class="tiles">${tiles.map(([key, label, value, note]) => html`<div class="tile" data-figure=${key}>
    <dt>${label}</dt><dd class="value">${value}</dd><dd class="note">${note}</dd>
  </div>`)}</dl>`;
}
