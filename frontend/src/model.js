// One model's page: conditions, traffic and rollout, live charts, try it, revisions, events,
// logs, its git source, and the changes a team lead ships from here.
import { useState } from "preact/hooks";
import { METRICS, get, modelPath } from "./api.js";
import { Chart } from "./charts.js";
import { condition, since, toYaml } from "./format.js";
import { Events, Logs, Revisions } from "./history.js";
import { html } from "./html.js";
import { ErrorNote, Ready } from "./parts.js";
import { PlannedChange } from "./changes.js";
import { usePoll } from "./polling.js";
import { Rollout } from "./rollout.js";
import { SLOPanel } from "./slo.js";
import { TryIt } from "./tryit.js";

export function ModelPage({ namespace, name, settings }) {
  const path = modelPath(namespace, name);
  const model = usePoll(() => get(path), [path]);
  const metricsPath = `${METRICS}/namespaces/${encodeURIComponent(namespace)}/models/${encodeURIComponent(name)}`;
  const metrics = usePoll(() => get(metricsPath), [path], 5000);
  const revisions = usePoll(async () => (await get(`${path}/revisions`)).items, [path], 5000);
  const events = usePoll(async () => (await get(`${path}/events?limit=30`)).items, [path], 3000);
  const refresh = () => [model, revisions, events].forEach((p) => p.reload());
  if (!model.data) {
    return html`<section><h1>${namespace}/${name}</h1>
      ${model.error ? html`<${ErrorNote} error=${model.error} />` : html`<p aria-busy="true">Loading…</p>`}</section>`;
  }
  const found = model.data;
  const ready = condition(found, "Ready");
  return html`<article aria-labelledby="model-title">
    <p class="crumbs"><a href="#/">Models</a> / ${namespace}</p>
    <div class="page-head">
      <h1 id="model-title">${namespace}/${name}</h1>
      <${Ready} condition=${ready} />
    </div>
    <${ErrorNote} error=${model.error} />
    <dl class="facts">
      <dt>URL</dt><dd>${found.status?.url ? html`<code>${found.status.url}</code>` : "–"}</dd>
      <dt>Format</dt><dd>${found.spec.format} · ${found.spec.task || "–"}</dd>
      <dt>Source</dt><dd><code>${found.spec.source?.uri}</code></dd>
      <dt>Generation</dt><dd>${found.metadata.generation} (observed ${found.status?.observedGeneration ?? "–"})</dd>
      <${GitSource} model=${found} />
      ${found.spec.slo ? "" : html`<dt>SLO</dt><dd data-testid="no-slo">none set: <code>spec.slo</code> would measure an error
        budget for this Model (<code>docs/slo.md</code>)</dd>`}
    </dl>
    <${Conditions} conditions=${found.status?.conditions || []} />
    <${SLOPanel} model=${found} />
    <${Rollout} model=${found} analyses=${metrics.data?.analyses} onChange=${refresh} />
    <${Charts} series=${metrics.data?.revisions || []} source=${metrics.data?.source} warning=${metrics.data?.warning} />
    <${Ship} model=${found} revisions=${revisions.data || []} onDone=${refresh} />
    <${TryIt} model=${found} gateway=${settings?.gatewayUrl} />
    <${Revisions} model=${found} revisions=${revisions.data} />
    <${Events} events=${events.data} />
    <${Logs} model=${found} />
  </article>`;
}

function Conditions({ conditions }) {
  return html`<section aria-labelledby="conditions-title" class="panel">
    <h2 id="conditions-title">Conditions</h2>
    <table class="conditions">
      <thead><tr><th scope="col">Type</th><th scope="col">Status</th><th scope="col">Reason</th><th scope="col">Message</th><th scope="col">Since</th></tr></thead>
      <tbody>${conditions.map((c) => html`<tr>
        <th scope="row">${c.type}</th><td>${c.status}</td><td>${c.reason}</td><td>${c.message}</td>
        <td title=${c.lastTransitionTime}>${since(c.lastTransitionTime)}</td>
      </tr>`)}</tbody>
    </table>
  </section>`;
}

function GitSource({ model }) {
  const source = model.metadata.labels?.["modelplane.io/gitops-source"];
  const found = usePoll(() => (source ? get(`/gitops/${encodeURIComponent(source)}`) : null), [source], 10000);
  if (!source) return null;
  const status = found.data;
  return html`<dt>Git source</dt><dd>${source}${status
    ? html` · <code>${status.url}</code> ${status.branch} · ${status.result}${status.lastAppliedCommit ? html` at <code>${status.lastAppliedCommit.slice(0, 12)}</code>` : ""}`
    : ""}</dd>`;
}

const point = (field, scale = 1) => (p) => [p.time, p[field] === null ? null : p[field] * scale];

const SOURCES = {
  gateway: "From the gateway's counters, sampled every 5 s; the last hour, kept in memory.",
  prometheus: "From Prometheus, which scrapes the gateway's counters.",
};

function Charts({ series, source, warning }) {
  const per = (field, scale) => series.map((s) => ({ label: s.revision, points: s.points.map(point(field, scale)) }));
  const latency = series.flatMap((s) => [
    { label: `${s.revision} p50`, points: s.points.map(point("p50Ms")), dash: [4, 4] },
    { label: `${s.revision} p99`, points: s.points.map(point("p99Ms")) },
  ]);
  return html`<section aria-labelledby="charts-title" class="panel">
    <h2 id="charts-title">Traffic over time</h2>
    ${source ? html`<p class="muted" data-testid="metrics-source">${SOURCES[source] || source}${warning ? ` (Prometheus: ${warning})` : ""}</p>` : ""}
    ${series.length ? html`<div class="charts">
      <${Chart} title="Requests per second" unit="req/s" series=${per("requestsPerSecond")} />
      <${Chart} title="Latency p50 and p99" unit="ms" series=${latency} />
      <${Chart} title="Errors" unit="% of requests" series=${per("errorRate", 100)} />
      <${Chart} title="Ready replicas" unit="replicas" series=${per("readyReplicas")} />
    </div>` : html`<p class="muted">Points appear every few seconds once revisions are serving.</p>`}
  </section>`;
}

// Shipping: a new source (a new model version), any edit of the manifest, or a return to the
// spec of the revision that served before the stable one (never a canary that was rolled back);
// each previewed before it is applied.
function Ship({ model, revisions, onDone }) {
  const [mode, setMode] = useState(null);
  const { namespace, name } = model.metadata;
  const path = modelPath(namespace, name);
  const stable = model.status?.stableRevision;
  const numbers = Object.fromEntries(revisions.map((r) => [r.name, r.number]));
  const earlier = revisions
    .filter((r) => stable && r.promoted && r.number < (numbers[stable] || 0))
    .at(-1);
  const close = () => setMode(null);
  const done = onDone;
  return html`<section aria-labelledby="ship-title" class="panel">
    <h2 id="ship-title">Ship a change</h2>
    <div class="row" role="group" aria-label="Changes">
      <button type="button" onClick=${() => setMode("source")}>New version…</button>
      <button type="button" onClick=${() => setMode("yaml")}>Edit YAML…</button>
      ${earlier ? html`<button type="button" onClick=${() => setMode("undo")}>Undo to ${earlier.name}…</button>` : ""}
    </div>
    ${mode === "source" ? html`<${NewSource} model=${model} path=${path} onDone=${done} onCancel=${close} />` : ""}
    ${mode === "yaml" ? html`<${EditYaml} model=${model} path=${path} onDone=${done} onCancel=${close} />` : ""}
    ${mode === "undo" && earlier ? html`<div>
      <p>Returns to the spec of ${earlier.name}, through the same rollout as any change.</p>
      <${PlannedChange} title=${`undo to ${earlier.name}`} current=${model} onDone=${done} onCancel=${close}
        request=${{ method: "PUT", path, body: manifest(model, earlier.spec), type: "application/json" }} />
    </div>` : ""}
  </section>`;
}

// The object a replace sends: metadata a user owns, and the spec.
function manifest(model, spec) {
  const { name, namespace, labels, annotations } = model.metadata;
  return { apiVersion: model.apiVersion, kind: model.kind, metadata: { name, namespace, labels, annotations }, spec };
}

function NewSource({ model, path, onDone, onCancel }) {
  const [uri, setUri] = useState(model.spec.source?.uri || "");
  const [digest, setDigest] = useState("");
  const patch = { spec: { source: { uri, sha256: digest || null } } };
  return html`<div class="form">
    <label>Artifact URI <input type="text" value=${uri} onInput=${(e) => setUri(e.target.value)} size="60" /></label>
    <label>SHA-256 (optional) <input type="text" value=${digest} onInput=${(e) => setDigest(e.target.value)} size="64" pattern="[0-9a-f]{64}" /></label>
    <${PlannedChange} title="new version" current=${model} onDone=${onDone} onCancel=${onCancel}
      request=${{ method: "PATCH", path, body: patch, type: "application/merge-patch+json" }} />
  </div>`;
}

function EditYaml({ model, path, onDone, onCancel }) {
  const [text, setText] = useState(() => toYaml(manifest(model, model.spec)));
  return html`<div class="form">
    <label for="edit-yaml">Manifest (YAML)</label>
    <textarea id="edit-yaml" rows="18" spellcheck="false" value=${text} onInput=${(e) => setText(e.target.value)}></textarea>
    <${PlannedChange} title="edit" current=${model} onDone=${onDone} onCancel=${onCancel}
      request=${{ method: "PUT", path, body: text, type: "application/yaml" }} />
  </div>`;
}
