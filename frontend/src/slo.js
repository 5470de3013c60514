// A Model's service level objective (`spec.slo`) beside what the control plane measured of it
// (`status.slo`, the `SLOBreached` condition) and the release freeze it may impose: the Model
// page's SLO panel, and the Releases page's overview of each team's error budgets.
import { FREEZE_OVERRIDE } from "./api.js";
import { condition, number, share } from "./format.js";
import { html } from "./html.js";
import { modelHash } from "./routes.js";

// Where the counts came from, in words: Prometheus, or the embedded gateway's own counts
// ("gateway (counted since the platform started)").
const counted = (source) =>
  source === "prometheus" ? "counted by Prometheus"
  : source.startsWith("gateway") ? "counted by the gateway since the platform started" : source;

// What the objective asks, in words: "99.9% of requests succeed, 99% within 250 ms, over 30d".
export function objective(slo) {
  const fast = slo.latencyP99Ms ? `, 99% within ${number(slo.latencyP99Ms)} ms` : "";
  return `${share(slo.availability)} of requests succeed${fast}, over ${slo.window}`;
}

// The budget left as a bar: full when untouched, empty and red once spent (or overspent).
export function BudgetBar({ left, label }) {
  if (left === null || left === undefined) return html`<span class="muted">not measured yet</span>`;
  const spent = left <= 0;
  const words = `${share(left, 4)} left${left < 0 ? ", overspent" : spent ? ", spent" : ""}`;
  const filled = Math.max(0, Math.min(1, left)) * 100;
  return html`<span class=${`budget ${spent ? "spent" : ""}`}>
    <span class="bar" role="meter" aria-label=${label} aria-valuemin="0" aria-valuemax="100"
      aria-valuenow=${filled.toFixed(1)} aria-valuetext=${words}><span style=${`width: ${filled}%`}></span></span>
    <span class="words">${words}</span>
  </span>`;
}

// Breached or not, as the `SLOBreached` condition says.
export function BreachBadge({ found }) {
  if (!found) return html`<span class="badge unknown">not measured</span>`;
  if (found.status === "True") return html`<span class="badge bad" title=${found.message}>breached: ${found.reason}</span>`;
  const kind = found.reason === "WithinBudget" ? "ok" : "unknown";
  return html`<span class=${`badge ${kind}`} title=${found.message}>${found.reason}</span>`;
}

// Whether releases are held: the freeze is off, on and waiting, holding a change, or overridden.
export function freezeState(model) {
  const slo = model.spec.slo;
  const override = model.metadata.annotations?.[FREEZE_OVERRIDE]?.trim();
  const stalled = condition(model, "Stalled");
  const held = stalled?.status === "True" && stalled.reason === "ReleaseFrozen";
  const spent = [model.status?.slo?.budgetRemaining, model.status?.slo?.latencyBudgetRemaining]
    .some((left) => left !== null && left !== undefined && left <= 0);
  if (!slo.freeze) return { kind: "unknown", badge: "off", text: "Releases go out whatever the budget (freeze: false)." };
  if (held) return { kind: "bad", badge: "release frozen", text: stalled.message };
  if (override) {
    return { kind: "progress", badge: "overridden", reason: override,
      text: `${FREEZE_OVERRIDE} lets every change through while it is there; remove it once the fix is out.` };
  }
  if (spent) return { kind: "bad", badge: "on: budget spent", text: "A change that makes a new revision will be held until the budget recovers; a rollback goes through." };
  return { kind: "ok", badge: "on", text: "A change that makes a new revision is held while the budget is spent; it is not spent now." };
}

function Freeze({ model }) {
  const state = freezeState(model);
  return html`<div class="freeze" data-testid="slo-freeze">
    <span class=${`badge ${state.kind}`}>Release freeze: ${state.badge}</span>
    ${state.reason ? html` <span data-testid="freeze-override">Reason: ${state.reason}</span>` : ""}
    <p class="muted">${state.text}</p>
  </div>`;
}

function BurnRates({ rates, latency }) {
  const times = (value) => (value === null || value === undefined ? "–" : `${number(value)}×`);
  const fast = (value) => (value > 1 ? "burning" : "");
  return html`<table class="burn-rates">
    <caption>Burn rate per window: 1× spends exactly the budget over the objective's window; more spends it sooner.</caption>
    <thead><tr><th scope="col">Window</th><th scope="col" class="num">Availability</th>
      ${latency ? html`<th scope="col" class="num">Latency</th>` : ""}</tr></thead>
    <tbody>${rates.map((r) => html`<tr key=${r.window} data-window=${r.window}>
      <th scope="row">${r.window}</th><td class=${`num ${fast(r.availability)}`}>${times(r.availability)}</td>
      ${latency ? html`<td class=${`num ${fast(r.latency)}`}>${times(r.latency)}</td>` : ""}
    </tr>`)}</tbody>
  </table>`;
}

function Measured({ slo, measured }) {
  return html`<dl class="facts">
    <dt>Requests</dt><dd data-testid="slo-requests">${measured.requests} over ${measured.window}${
      measured.source ? html` <span class="muted">(${counted(measured.source)})</span>` : ""}</dd>
    <dt>Availability</dt><dd data-testid="slo-availability">${share(measured.availability)} against ${share(slo.availability)}</dd>
    <dt>Error budget</dt><dd data-testid="slo-budget"><${BudgetBar} left=${measured.budgetRemaining} label="Error budget remaining" /></dd>
    ${slo.latencyP99Ms ? html`<dt>Within ${number(slo.latencyP99Ms)} ms</dt>
      <dd data-testid="slo-latency">${share(measured.latency)} against 99%</dd>
      <dt>Latency budget</dt><dd data-testid="slo-latency-budget"><${BudgetBar} left=${measured.latencyBudgetRemaining} label="Latency budget remaining" /></dd>` : ""}
    <dt>Alerts firing</dt><dd data-testid="slo-alerts">${measured.alerts?.length
      ? html`<ul class="alerts">${measured.alerts.map((a) => html`<li>${a}</li>`)}</ul>` : "none"}</dd>
    ${measured.uncovered?.length ? html`<dt>Not covered</dt><dd data-testid="slo-uncovered">${measured.uncovered.join(", ")}:
      the counts reach back only to when the platform started, so these windows are measured over what there is.</dd>` : ""}
  </dl>
  ${measured.burnRates?.length ? html`<${BurnRates} rates=${measured.burnRates} latency=${Boolean(slo.latencyP99Ms)} />` : ""}`;
}

// The Model page's panel; nothing when the Model has no objective.
export function SLOPanel({ model }) {
  const slo = model.spec.slo;
  if (!slo) return null;
  const measured = model.status?.slo;
  const breached = condition(model, "SLOBreached");
  return html`<section aria-labelledby="slo-title" class="panel" data-testid="slo-panel">
    <h2 id="slo-title">Service level objective</h2>
    <p data-testid="slo-objective">${objective(slo)}. <span class="muted">How it is measured: <code>docs/slo.md</code>.</span></p>
    <div class="breach" data-testid="slo-breach"><${BreachBadge} found=${breached} />
      ${breached?.message ? html` <span>${breached.message}</span>` : ""}</div>
    ${measured ? html`<${Measured} slo=${slo} measured=${measured} />`
    : html`<p class="empty">Nothing measured yet: the numbers appear once the gateway has counted requests to this Model.</p>`}
    <${Freeze} model=${model} />
  </section>`;
}

// One team's Models with an objective: each one's budget left and whether it is breached.
export function TeamSLOs({ namespace, models, model }) {
  const named = (m) => m.metadata.name;
  return html`<section class="team-slos" data-slo-team=${namespace} aria-labelledby=${`slo-${namespace}`}>
    <h3 id=${`slo-${namespace}`}>${namespace}</h3>
    ${models.length ? html`<table>
      <thead><tr><th scope="col">Model</th><th scope="col">Objective</th><th scope="col" class="num">Availability</th>
        <th scope="col">Error budget</th><th scope="col">Status</th><th scope="col">Release freeze</th></tr></thead>
      <tbody>${models.map((m) => html`<tr key=${named(m)} data-slo-model=${named(m)}>
        <th scope="row"><a href=${modelHash(namespace, named(m))}>${named(m)}</a></th>
        <td>${objective(m.spec.slo)}</td>
        <td class="num">${share(m.status?.slo?.availability)}</td>
        <td><${BudgetBar} left=${m.status?.slo?.budgetRemaining} label=${`Error budget remaining of ${named(m)}`} /></td>
        <td><${BreachBadge} found=${condition(m, "SLOBreached")} /></td>
        <td>${freezeState(m).badge}</td>
      </tr>`)}</tbody>
    </table>` : html`<p class="empty" data-testid="no-slo">${model ? `${namespace}/${model} has no SLO` : `No Model of ${namespace} has an SLO`}:
      set <code>spec.slo</code> on a Model to measure its error budget (<code>docs/slo.md</code>).</p>`}
  </section>`;
}
