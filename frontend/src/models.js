// The first page: every model the caller may read, with its health and load, filterable.
import { useState } from "preact/hooks";
import { METRICS, MODELS, get } from "./api.js";
import { condition, ms, number, percent } from "./format.js";
import { html } from "./html.js";
import { usePoll } from "./polling.js";
import { ErrorNote, Ready, TrafficText } from "./parts.js";

async function load() {
  const [models, metrics] = await Promise.all([get(`${MODELS}/models`), get(`${METRICS}/models`)]);
  const load = new Map(metrics.items.map((m) => [`${m.namespace}/${m.name}`, m]));
  return models.items.map((model) => ({
    model,
    id: `${model.metadata.namespace}/${model.metadata.name}`,
    metrics: load.get(`${model.metadata.namespace}/${model.metadata.name}`) || {},
  }));
}

export function ModelsPage() {
  const { data, error } = usePoll(load, []);
  const [search, setSearch] = useState("");
  const [namespace, setNamespace] = useState("");
  const rows = data || [];
  const namespaces = [...new Set(rows.map((r) => r.model.metadata.namespace))].sort();
  const words = search.toLowerCase().split(/\s+/).filter(Boolean);
  const shown = rows.filter(
    ({ model, id }) =>
      (!namespace || model.metadata.namespace === namespace) &&
      words.every((w) => `${id} ${model.spec.format} ${model.spec.task}`.toLowerCase().includes(w)),
  );
  return html`<section aria-labelledby="models-title">
    <div class="page-head">
      <h1 id="models-title">Models</h1>
      <a class="button" href="#/apply">Apply a model</a>
    </div>
    <div class="filters">
      <label>Search <input type="search" value=${search} placeholder="name, format, task"
        onInput=${(e) => setSearch(e.target.value)} /></label>
      <label>Namespace <select value=${namespace} onChange=${(e) => setNamespace(e.target.value)}>
        <option value="">all</option>
        ${namespaces.map((ns) => html`<option value=${ns}>${ns}</option>`)}
      </select></label>
    </div>
    <${ErrorNote} error=${error} />
    ${data === null && !error ? html`<p aria-busy="true">Loading models…</p>` : ""}
    ${data !== null && !shown.length
      ? html`<p class="empty">${rows.length ? "No model matches the filter." : "No models yet: apply one."}</p>`
      : ""}
    ${shown.length ? html`<table class="models">
      <caption class="visually-hidden">Models, their revisions, traffic and load</caption>
      <thead><tr>
        <th scope="col">Model</th><th scope="col">Ready</th><th scope="col">Task</th>
        <th scope="col">Revision</th><th scope="col">Traffic</th><th scope="col">Replicas</th>
        <th scope="col" class="num">Req/s</th><th scope="col" class="num">Errors</th>
        <th scope="col" class="num">P99</th><th scope="col">URL</th>
      </tr></thead>
      <tbody>${shown.map((row) => html`<${ModelRow} key=${row.id} ...${row} />`)}</tbody>
    </table>` : ""}
  </section>`;
}

function ModelRow({ model, id, metrics }) {
  const status = model.status || {};
  const revisions = status.revisions || [];
  const ready = revisions.reduce((n, r) => n + (r.readyReplicas || 0), 0);
  const wanted = revisions.reduce((n, r) => n + (r.replicas || 0), 0);
  const current = status.stableRevision || revisions.at(-1)?.name;
  return html`<tr data-model=${id}>
    <th scope="row"><a href=${`#/models/${id}`}>${id}</a></th>
    <td><${Ready} condition=${condition(model, "Ready")} /></td>
    <td>${model.spec.task || "–"}</td>
    <td>${current || "–"}${status.canaryRevision ? html` <span class="tag">canary ${status.canaryRevision}</span>` : ""}</td>
    <td><${TrafficText} revisions=${revisions} /></td>
    <td>${ready}/${wanted}</td>
    <td class="num">${number(metrics.requestsPerSecond)}</td>
    <td class="num">${percent(metrics.errorRate)}</td>
    <td class="num">${ms(metrics.p99Ms)}</td>
    <td>${status.url ? html`<code>${status.url}</code>` : "–"}</td>
  </tr>`;
}
