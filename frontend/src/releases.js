// The Releases page: each team's release history and its DORA figures over a period, from the
// release API (`modelplane releases` reads the same report), its Models' error budgets, and
// what they used (the usage API, as `modelplane usage`). The period, namespace and Model are in
// the route, so a view has a link and the back button returns to the last one.
import { MODELS, RELEASES, USAGE, get } from "./api.js";
import { Team } from "./dora.js";
import { duration, since as ago } from "./format.js";
import { html } from "./html.js";
import { ErrorNote } from "./parts.js";
import { usePoll } from "./polling.js";
import { modelHash, releasesHash } from "./routes.js";
import { TeamSLOs } from "./slo.js";
import { TeamUsage } from "./usage.js";

const PERIODS = { "7d": "7 days", "30d": "30 days", "90d": "90 days" };

const OUTCOMES = {
  Promoted: "ok", Undone: "bad", RolledBack: "bad", Aborted: "bad", Superseded: "unknown", InProgress: "progress",
};

// Usage trend steps per period: the release trend's.
const USAGE_STEPS = { "7d": "1d", "30d": "1d", "90d": "1w" };

function reportPath(api, report, namespace, query) {
  const where = namespace ? `/namespaces/${encodeURIComponent(namespace)}` : "";
  return `${api}${where}/${report}?${new URLSearchParams(query)}`;
}

// A report that refreshes itself, and never shows the last selection's while the new one loads.
function useReport(path) {
  const found = usePoll(async () => ({ path, data: await get(path) }), [path], 10000);
  return { data: found.data?.path === path ? found.data.data : null, error: found.error };
}

export function ReleasesPage({ since, namespace, model }) {
  const report = useReport(reportPath(RELEASES, "releases", namespace, { since }));
  const step = USAGE_STEPS[since];
  const usage = useReport(reportPath(USAGE, "usage", namespace, step ? { since, step } : { since }));
  // Every Model the caller may read: the namespaces to pick from, and the objectives to show.
  const readable = usePoll(async () => (await get(`${MODELS}/models`)).items, [], 10000);
  const data = report.data;
  const teams = data?.teams || [];
  const options = [...new Set([...(readable.data || []).map((m) => m.metadata.namespace),
    ...teams.map((t) => t.namespace), namespace])].filter(Boolean).sort();
  const go = (change) => { location.hash = releasesHash({ since, namespace, model, ...change }); };
  const period = PERIODS[since] || since;
  const items = (data?.items || []).filter((r) => !model || r.model === model);
  const breaches = (data?.incidents || []).filter((i) => !model || i.model === model);
  return html`<section aria-labelledby="releases-title">
    <div class="page-head">
      <h1 id="releases-title">Releases${model ? ` of ${namespace}/${model}` : ""}</h1>
    </div>
    <div class="filters">
      <label>Period <select value=${since} onChange=${(e) => go({ since: e.target.value })}>
        ${Object.entries({ ...PERIODS, [since]: period }).map(([value, words]) => html`<option value=${value}>last ${words}</option>`)}
      </select></label>
      <label>Namespace <select value=${namespace} onChange=${(e) => go({ namespace: e.target.value, model: "" })}>
        <option value="">all</option>
        ${options.map((ns) => html`<option value=${ns}>${ns}</option>`)}
      </select></label>
      ${model ? html`<a href=${releasesHash({ since, namespace })}>Every Model of ${namespace}</a>` : ""}
    </div>
    <p class="muted">Every change to what a Model serves is a release. A deployment reached all traffic in the
      period; a release failed when it was rolled back, aborted, or undone within the undo window
      (${duration(data?.undoWindowSeconds ?? 86400)}). How each figure is counted: <code>docs/releases.md</code>.</p>
    <${ErrorNote} error=${report.error || usage.error || readable.error} />
    ${!data && !report.error ? html`<p aria-busy="true">Loading releases…</p>` : ""}
    ${data && !teams.length ? html`<p class="empty" data-testid="no-releases">No releases yet${namespace ? ` in ${namespace}` : ""}:
      every change to what a Model serves is one. <a href="#/apply">Apply a Model</a>, or ship a new version from its page.</p>` : ""}
    ${teams.map((team) => html`<${Team} key=${team.namespace} team=${team} step=${data.stepSeconds} since=${since}
      period=${period} picked=${model} listed=${items.some((r) => r.namespace === team.namespace)} />`)}
    <${Budgets} models=${readable.data} releases=${data} usage=${usage.data} namespace=${namespace} model=${model} />
    <${Usage} usage=${usage.data} namespace=${namespace} model=${model} period=${period} />
    ${data && teams.length ? html`<${ReleaseList} items=${items} period=${period} />` : ""}
    ${breaches.length ? html`<${BreachList} items=${breaches} />` : ""}
  </section>`;
}

// The teams a section shows: those of the given namespaces, narrowed to the page's one.
const teamsOf = (namespace, ...found) =>
  [...new Set(found.flat())].filter((ns) => !namespace || ns === namespace).sort();

function Budgets({ models, releases, usage, namespace, model }) {
  if (!models || !releases || !usage) return null;
  const objectives = models.filter((m) => m.spec.slo && (!model || m.metadata.name === model));
  const namespaces = teamsOf(namespace, releases.teams.map((t) => t.namespace),
    usage.teams.map((t) => t.namespace), objectives.map((m) => m.metadata.namespace));
  if (!namespaces.length) return null;
  return html`<section aria-labelledby="budgets-title" class="panel">
    <h2 id="budgets-title">SLOs and error budgets</h2>
    <p class="muted">Each Model with an objective (<code>spec.slo</code>): the budget its window leaves, and whether it
      is breached (spent, or burning fast enough to page). How they are measured: <code>docs/slo.md</code>.</p>
    ${namespaces.map((ns) => html`<${TeamSLOs} key=${ns} namespace=${ns} model=${model}
      models=${objectives.filter((m) => m.metadata.namespace === ns)} />`)}
  </section>`;
}

function Usage({ usage, namespace, model, period }) {
  if (!usage) return null;
  const namespaces = teamsOf(namespace, usage.teams.map((t) => t.namespace));
  return html`<section aria-labelledby="usage-title" class="panel">
    <h2 id="usage-title">Usage</h2>
    <p class="muted">What each team's Models used in the last ${period}: replica time, weighted by what each replica
      requested, requests answered and tokens. How each figure is counted: <code>docs/releases.md</code>.</p>
    ${namespaces.length ? namespaces.map((ns) => html`<${TeamUsage} key=${ns} namespace=${ns} model=${model}
      team=${usage.teams.find((t) => t.namespace === ns)} step=${usage.stepSeconds} period=${period} />`)
    : html`<p class="empty" data-testid="no-usage">No usage recorded yet${namespace ? ` for ${namespace}` : ""} in the last
      ${period}: replica time is counted while Models' replicas run, and requests as they are answered.</p>`}
  </section>`;
}

const rowId = (release) => `release-${release.namespace}-${release.revision}`;

// The release that undid this one, in the list when it is there (else the Model's page).
function UndoneBy({ release }) {
  const jump = (event) => {
    const row = document.getElementById(rowId({ namespace: release.namespace, revision: release.undoneBy }));
    if (!row) return;
    event.preventDefault();
    row.scrollIntoView({ block: "center" });
    row.focus();
  };
  return html`<a href=${modelHash(release.namespace, release.model)} onClick=${jump}>${release.undoneBy}</a>`;
}

function ReleaseList({ items, period }) {
  const newest = [...items].sort((a, b) => b.started.localeCompare(a.started));
  return html`<section aria-labelledby="release-list-title" class="panel">
    <h2 id="release-list-title">Every release</h2>
    ${newest.length ? html`<table class="releases">
      <thead><tr><th scope="col">Revision</th><th scope="col">Model</th><th scope="col">Outcome</th>
        <th scope="col">Started</th><th scope="col">Finished</th><th scope="col" class="num">Lead time</th>
        <th scope="col" class="num">Time to restore</th><th scope="col">Reason</th><th scope="col">Undone by</th></tr></thead>
      <tbody>${newest.map((r) => html`<tr key=${rowId(r)} id=${rowId(r)} tabindex="-1" data-revision=${r.revision}>
        <th scope="row">${r.revision}</th>
        <td><a href=${modelHash(r.namespace, r.model)}>${r.namespace}/${r.model}</a></td>
        <td><span class=${`badge ${OUTCOMES[r.outcome] || "unknown"}`}>${r.outcome}</span></td>
        <td title=${r.started}>${ago(r.started)}</td>
        <td title=${r.finished || ""}>${r.finished ? ago(r.finished) : "–"}</td>
        <td class="num">${duration(r.leadTimeSeconds)}</td><td class="num">${duration(r.timeToRestoreSeconds)}</td>
        <td>${[r.reason, r.freezeOverride && `released through a freeze: ${r.freezeOverride}`].filter(Boolean).join("; ") || "–"}</td>
        <td>${r.undoneBy ? html`<${UndoneBy} release=${r} />` : "–"}</td>
      </tr>`)}</tbody>
    </table>` : html`<p class="empty">No releases in the last ${period}: pick a longer period.</p>`}
  </section>`;
}

// SLO breaches that lasted into the period: each counts in the team's time to restore.
function BreachList({ items }) {
  const newest = [...items].sort((a, b) => b.started.localeCompare(a.started));
  return html`<section aria-labelledby="breach-list-title" class="panel">
    <h2 id="breach-list-title">SLO breaches</h2>
    <p class="muted">From a Model's <code>SLOBreached</code> turning true to its clearing; each restored one counts in
      the team's time to restore.</p>
    <table class="releases" data-testid="slo-breaches">
      <thead><tr><th scope="col">Model</th><th scope="col">Stable revision</th><th scope="col">Started</th>
        <th scope="col">Restored</th><th scope="col" class="num">Time to restore</th><th scope="col">Reason</th></tr></thead>
      <tbody>${newest.map((i) => html`<tr key=${`${i.namespace}/${i.model}@${i.started}`}>
        <th scope="row"><a href=${modelHash(i.namespace, i.model)}>${i.namespace}/${i.model}</a></th>
        <td>${i.revision}</td>
        <td title=${i.started}>${ago(i.started)}</td>
        <td title=${i.restored || ""}>${i.restored ? ago(i.restored) : html`<span class="badge bad">ongoing</span>`}</td>
        <td class="num">${duration(i.timeToRestoreSeconds)}</td>
        <td>${i.reason}</td>
      </tr>`)}</tbody>
    </table>
  </section>`;
}
