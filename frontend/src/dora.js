// One team's releases in figures: the four DORA figures as tiles, their trend per step (charts,
// and the same numbers in a table) and each Model's figures. The Releases page shows one per
// namespace; the numbers are the release API's, written as `modelplane releases` writes them.
import { Chart, stepAxis, stepStart } from "./charts.js";
import { duration } from "./format.js";
import { html } from "./html.js";
import { Tiles } from "./parts.js";
import { modelHash, releasesHash } from "./routes.js";

const perDay = (figures) => figures.deploymentsPerDay.toFixed(2);
const failureRate = (figures) =>
  figures.changeFailureRate === null ? "–" : `${(figures.changeFailureRate * 100).toFixed(0)}%`;

function Summary({ summary, period }) {
  const tiles = [
    ["deploymentsPerDay", "Deployments per day", perDay(summary),
      `${summary.deployments} reached all traffic in ${period}`],
    ["leadTime", "Lead time (median)", duration(summary.leadTimeSeconds),
      "from the change's commit (else its apply) to promotion"],
    ["changeFailureRate", "Change-failure rate", failureRate(summary),
      `${summary.failed} failed of ${summary.releases} finished`],
    ["timeToRestore", "Time to restore (median)", duration(summary.timeToRestoreSeconds),
      "how long a failed release served traffic, or an SLO breach lasted"],
  ];
  return html`<${Tiles} tiles=${tiles} />`;
}

const UNITS = [[86400, "days"], [3600, "hours"], [60, "minutes"]];

// Lead times in the largest unit that keeps them readable: an hour reads better than 3600 s.
function leadUnit(trend) {
  const most = Math.max(0, ...trend.map((b) => b.leadTimeSeconds ?? 0));
  return UNITS.find(([size]) => most >= 2 * size) || [1, "seconds"];
}

function Trend({ trend, step }) {
  const { per, dates, at, span } = stepAxis(trend, step);
  // A bucket with none is no bar (null), so a period without releases reads as empty.
  const counts = [
    { label: "deployments", points: trend.map((b) => [at(b), b.deployments || null]), bars: -1, colour: "#2563eb" },
    { label: "failures", points: trend.map((b) => [at(b), b.failed || null]), bars: 1, colour: "#dc2626" },
  ];
  const [size, unit] = leadUnit(trend);
  const lead = [{
    label: "lead time (median)",
    points: trend.map((b) => [at(b), b.leadTimeSeconds === null ? null : b.leadTimeSeconds / size]),
  }];
  const busy = trend.filter((b) => b.releases || b.deployments);
  return html`<div class="charts">
      <${Chart} title=${`Deployments and failures per ${per}`} unit="releases" series=${counts} dates=${dates} span=${span}
        empty="none in this period" about=${`per ${per}`} />
      <${Chart} title=${`Lead time per ${per} (median)`} unit=${unit} series=${lead} dates=${dates} span=${span}
        empty="no deployments in this period" about=${`per ${per}`} />
    </div>
    <details class="trend">
      <summary>The trend as a table (${per}s with releases)</summary>
      <table>
        <thead><tr><th scope="col">${per} starting</th><th scope="col" class="num">Deployments</th>
          <th scope="col" class="num">Failed</th><th scope="col" class="num">Finished</th>
          <th scope="col" class="num">Lead time</th><th scope="col" class="num">Time to restore</th></tr></thead>
        <tbody>${busy.map((b) => html`<tr data-bucket=${b.start}>
          <th scope="row">${stepStart(b)}</th><td class="num">${b.deployments}</td>
          <td class="num">${b.failed}</td><td class="num">${b.releases}</td>
          <td class="num">${duration(b.leadTimeSeconds)}</td><td class="num">${duration(b.timeToRestoreSeconds)}</td>
        </tr>`)}</tbody>
      </table>
    </details>`;
}

function Models({ team, since, picked }) {
  return html`<table class="team-models">
    <caption>Per Model</caption>
    <thead><tr><th scope="col">Model</th><th scope="col" class="num">Deployments</th><th scope="col" class="num">Per day</th>
      <th scope="col" class="num">Lead time</th><th scope="col" class="num">Change-failure rate</th>
      <th scope="col" class="num">Time to restore</th><th scope="col">Its releases</th></tr></thead>
    <tbody>${team.models.map(({ name, summary }) => html`<tr key=${name} data-model=${name} class=${name === picked ? "picked" : ""}>
      <th scope="row"><a href=${modelHash(team.namespace, name)}>${name}</a></th>
      <td class="num">${summary.deployments}</td><td class="num">${perDay(summary)}</td>
      <td class="num">${duration(summary.leadTimeSeconds)}</td>
      <td class="num">${failureRate(summary)} (${summary.failed}/${summary.releases})</td>
      <td class="num">${duration(summary.timeToRestoreSeconds)}</td>
      <td><a href=${releasesHash({ since, namespace: team.namespace, model: name })}>list</a></td>
    </tr>`)}</tbody>
  </table>`;
}

// `period`: the period in words; `listed`: whether the team has releases in the period at all.
export function Team({ team, step, since, period, picked, listed }) {
  const finished = team.summary.releases > 0;
  return html`<section class="panel team" data-team=${team.namespace} aria-labelledby=${`team-${team.namespace}`}>
    <h2 id=${`team-${team.namespace}`}>${team.namespace}</h2>
    ${finished ? html`<${Summary} summary=${team.summary} period=${period} />
      <${Trend} trend=${team.trend} step=${step} />`
    : html`<p class="empty">No release of ${team.namespace} finished in the last ${period}${listed
      ? " (those still rolling out are listed below)" : ""}: ship a change from a Model's page, or pick a longer period.</p>`}
    <${Models} team=${team} since=${since} picked=${picked} />
  </section>`;
}
