// What one team's Models used over a period, from the usage API (`modelplane usage` reads the
// same report): replica time and what the replicas requested, requests and tokens, as tiles,
// a trend per step (charts, and the same numbers in a table) and each Model's figures. The
// Releases page shows one per namespace.
import { Chart, stepAxis, stepStart } from "./charts.js";
import { number } from "./format.js";
import { html } from "./html.js";
import { Tiles } from "./parts.js";
import { modelHash } from "./routes.js";

const hours = (seconds) => number(seconds / 3600);

// [key, label, value of a summary, column heading] of each figure, in the CLI's order.
const FIGURES = [
  ["replicaHours", "Replica-hours", (u) => hours(u.replicaSeconds), "Replica-hours"],
  ["cpuHours", "CPU core-hours", (u) => hours(u.cpuCoreSeconds), "CPU-hours"],
  ["memoryHours", "Memory GiB-hours", (u) => hours(u.memoryGiBSeconds), "GiB-hours"],
  ["acceleratorHours", "Accelerator-hours", (u) => hours(u.acceleratorSeconds), "Accel-hours"],
  ["requests", "Requests", (u) => String(u.requests), "Requests"],
  ["promptTokens", "Tokens in (prompt)", (u) => String(u.promptTokens), "Tokens in"],
  ["completionTokens", "Tokens out (completion)", (u) => String(u.completionTokens), "Tokens out"],
];

const NOTES = {
  replicaHours: "replicas starting or ready",
  cpuHours: "replica time times the cores each requested",
  memoryHours: "replica time times the memory each requested",
  acceleratorHours: "replica time times the accelerators each requested",
  promptTokens: "what the OpenAI API answers said they used",
  completionTokens: "what the OpenAI API answers said they used",
};

function Summary({ used }) {
  const errors = `${used.clientErrors} client errors (4xx), ${used.serverErrors} server errors (5xx)`;
  const note = (key) => (key === "requests" ? errors : NOTES[key]);
  return html`<${Tiles} tiles=${FIGURES.map(([key, label, value]) => [key, label, value(used), note(key)])} />`;
}

function Trend({ trend, step }) {
  const { per, dates, at, span } = stepAxis(trend, step);
  const none = (value) => value || null; // a step without any is no bar
  const time = [
    { label: "replica-hours", points: trend.map((b) => [at(b), none(b.replicaSeconds / 3600)]), bars: -1, colour: "#2563eb" },
    { label: "CPU core-hours", points: trend.map((b) => [at(b), none(b.cpuCoreSeconds / 3600)]), bars: 1, colour: "#059669" },
  ];
  const requests = [
    { label: "requests", points: trend.map((b) => [at(b), none(b.requests)]), bars: -1, colour: "#2563eb" },
    { label: "server errors", points: trend.map((b) => [at(b), none(b.serverErrors)]), bars: 1, colour: "#dc2626" },
  ];
  const busy = trend.filter((b) => b.replicaSeconds || b.requests);
  return html`<div class="charts">
      <${Chart} title=${`Replica time per ${per}`} unit="hours" series=${time} dates=${dates} span=${span} top=${0.01}
        empty="no replica ran in this period" about=${`per ${per}, every Model of the team`} />
      <${Chart} title=${`Requests per ${per}`} unit="requests" series=${requests} dates=${dates} span=${span}
        empty="none in this period" about=${`per ${per}, every Model of the team`} />
    </div>
    <details class="trend">
      <summary>Usage as a table (${per}s with any)</summary>
      <table>
        <thead><tr><th scope="col">${per} starting</th>
          ${FIGURES.map(([, , , heading]) => html`<th scope="col" class="num">${heading}</th>`)}</tr></thead>
        <tbody>${busy.map((b) => html`<tr data-bucket=${b.start}>
          <th scope="row">${stepStart(b)}</th>${FIGURES.map(([, , value]) => html`<td class="num">${value(b)}</td>`)}
        </tr>`)}</tbody>
      </table>
    </details>`;
}

function Models({ namespace, models }) {
  return html`<table class="team-models">
    <caption>Per Model</caption>
    <thead><tr><th scope="col">Model</th>${FIGURES.map(([, , , heading]) => html`<th scope="col" class="num">${heading}</th>`)}
      <th scope="col" class="num">Server errors</th></tr></thead>
    <tbody>${models.map(({ name, summary }) => html`<tr key=${name} data-usage-model=${name}>
      <th scope="row"><a href=${modelHash(namespace, name)}>${name}</a></th>
      ${FIGURES.map(([key, , value]) => html`<td class="num" data-figure=${key}>${value(summary)}</td>`)}
      <td class="num">${summary.serverErrors}</td>
    </tr>`)}</tbody>
  </table>`;
}

// `team`: the report's entry for the namespace (none: nothing recorded in the period);
// `model`: the Model the page is narrowed to, whose figures the tiles then show.
export function TeamUsage({ namespace, team, step, period, model }) {
  const models = (team?.models || []).filter((m) => !model || m.name === model);
  const whose = model ? `${namespace}/${model}` : namespace;
  return html`<section class="team-usage" data-usage-team=${namespace} aria-labelledby=${`usage-${namespace}`}>
    <h3 id=${`usage-${namespace}`}>${whose}</h3>
    ${models.length ? html`<${Summary} used=${model ? models[0].summary : team.summary} />
      ${model ? html`<p class="muted">The trend below is the whole team's, every Model.</p>` : ""}
      <${Trend} trend=${team.trend} step=${step} />
      <${Models} namespace=${namespace} models=${models} />`
    : html`<p class="empty" data-testid="no-usage">No usage recorded yet for ${whose} in the last ${period}: replica
      time is counted while its Models' replicas run, and requests as they are answered (kept by the hour).</p>`}
  </section>`;
}
