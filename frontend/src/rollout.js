// A model's traffic split, its rollout (evaluation gate, step, analysis against thresholds, over
// time) and the commands that steer it; each command says what it will do before it is sent.
import { useState } from "preact/hooks";
import { rolloutCommand } from "./api.js";
import { Chart } from "./charts.js";
import { number } from "./format.js";
import { html } from "./html.js";
import { GateVerdict } from "./gate.js";
import { ErrorNote, TrafficBar } from "./parts.js";
import { releasesHash } from "./routes.js";

// A rollout under way: a canary that is neither promoted nor rolled back.
const moving = (state) => state?.phase === "Progressing" || state?.phase === "Paused";

function commands(model) {
  const { stableRevision: stable, canaryRevision: canary, rollout } = model.status || {};
  if (!canary || !moving(rollout)) return [];
  const paused = rollout.phase === "Paused";
  return [
    ["promote", "Promote", `${canary} takes all traffic now and becomes stable; the remaining steps are skipped.`],
    ["abort", "Abort", `All traffic returns to ${stable || "the stable revision"}; ${canary} is rolled back.`],
    paused
      ? ["resume", "Resume", "The rollout continues; the current step starts over."]
      : ["pause", "Pause", "The rollout holds its current step until resumed."],
  ];
}

export function Rollout({ model, analyses, onChange }) {
  const status = model.status || {};
  const state = status.rollout;
  const steps = model.spec.rollout?.steps || [];
  const [asked, setAsked] = useState(null);
  const [error, setError] = useState(null);
  const send = async (verb) => {
    setError(null);
    try {
      await rolloutCommand(model.metadata.namespace, model.metadata.name, verb);
      setAsked(null);
      onChange();
    } catch (failure) {
      setError(failure);
    }
  };
  const offered = commands(model);
  const pending = offered.find(([verb]) => verb === asked);
  return html`<section aria-labelledby="rollout-title" class="panel">
    <h2 id="rollout-title">Traffic and rollout</h2>
    <${TrafficBar} revisions=${status.revisions || []} />
    <dl class="facts">
      <dt>Strategy</dt><dd>${model.spec.rollout?.strategy || "Canary"}</dd>
      <dt>Stable</dt><dd>${status.stableRevision || "–"}</dd>
      <dt>Canary</dt><dd>${status.canaryRevision || "–"}</dd>
      <dt>Phase</dt><dd data-testid="rollout-phase">${state ? `${state.phase}${moving(state) ? ` (step ${state.step + 1} of ${steps.length})` : ""}` : "no rollout yet"}</dd>
      ${state?.message ? html`<dt>Message</dt><dd>${state.message}</dd>` : ""}
    </dl>
    ${state?.evaluation ? html`<${GateVerdict} verdict=${state.evaluation} gate=${model.spec.rollout?.evaluation}
      revision=${status.canaryRevision || status.stableRevision} />` : ""}
    ${state?.lastAnalysis ? html`<${AnalysisTable} analysis=${state.lastAnalysis} />` : ""}
    ${analyses?.length ? html`<${AnalysisCharts} analyses=${analyses} />` : ""}
    ${offered.length ? html`<div class="row" role="group" aria-label="Rollout commands">
      ${offered.map(([verb, label]) => html`<button type="button" onClick=${() => setAsked(verb)}>${label}…</button>`)}
    </div>` : ""}
    ${pending ? html`<div class="confirm" role="dialog" aria-label=${`${pending[1]} the rollout`}>
      <p><strong>${pending[1]}:</strong> ${pending[2]}</p>
      <button type="button" class="primary" onClick=${() => send(pending[0])}>Confirm ${pending[1].toLowerCase()}</button>
      <button type="button" class="quiet" onClick=${() => setAsked(null)}>Cancel</button>
    </div>` : ""}
    <${ErrorNote} error=${error} />
    <p><a href=${releasesHash({ namespace: model.metadata.namespace, model: model.metadata.name })}>Releases of ${model.metadata.name}</a>: its
      deployments, failures, lead time and time to restore.</p>
  </section>`;
}

function AnalysisTable({ analysis }) {
  return html`<table class="analysis">
    <caption>Last analysis: ${analysis.passed ? "passed" : analysis.message}</caption>
    <thead><tr><th scope="col">Metric</th><th scope="col" class="num">Value</th><th scope="col" class="num">Threshold</th><th scope="col">Result</th></tr></thead>
    <tbody>${(analysis.metrics || []).map((m) => html`<tr>
      <th scope="row">${m.name}</th><td class="num">${number(m.value)}</td><td class="num">${number(m.threshold)}</td>
      <td><span class=${`badge ${m.passed ? "ok" : "bad"}`}>${m.passed ? "pass" : "fail"}</span></td>
    </tr>`)}</tbody>
  </table>`;
}

function AnalysisCharts({ analyses }) {
  const names = [...new Set(analyses.flatMap((a) => a.metrics.map((m) => m.name)))];
  return html`<div class="charts">${names.map((name) => {
    const found = analyses.map((a) => [a.time, a.metrics.find((m) => m.name === name)]).filter(([, m]) => m);
    return html`<${Chart} title=${`Analysis: ${name}`} unit=${name}
      series=${[
        { label: "value", points: found.map(([t, m]) => [t, m.value]) },
        { label: "threshold", points: found.map(([t, m]) => [t, m.threshold]), dash: [6, 4], colour: "#dc2626" },
      ]} />`;
  })}</div>`;
}
