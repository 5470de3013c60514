// The evaluation gate's verdict on a canary (`status.rollout.evaluation`): the metric it scored
// on the dataset against the threshold, measured before the canary took any traffic. A failed
// gate rolled the canary back.
import { number } from "./format.js";
import { html } from "./html.js";

const LOWER_IS_BETTER = new Set(["meanAbsoluteError"]);

function bound(verdict, gate) {
  const lower = LOWER_IS_BETTER.has(verdict.metric);
  const limit = number(verdict.threshold);
  if (gate?.relativeToStable) return `at most ${limit} ${lower ? "above" : "under"} the stable revision's`;
  return `${lower ? "at most" : "at least"} ${limit}`;
}

export function GateVerdict({ verdict, gate, revision }) {
  const passed = verdict.passed;
  return html`<div class=${`gate ${passed ? "passed" : "failed"}`} data-testid="evaluation-gate">
    <h3>Evaluation gate${revision ? ` of ${revision}` : ""}
      <span class=${`badge ${passed ? "ok" : "bad"}`}>${passed ? "passed" : "failed: rolled back"}</span></h3>
    <dl class="facts">
      <dt>Metric</dt><dd>${verdict.metric}</dd>
      <dt>Value</dt><dd data-testid="gate-value">${number(verdict.value)}</dd>
      <dt>Threshold</dt><dd data-testid="gate-threshold">${bound(verdict, gate)}</dd>
      ${verdict.stableValue !== null && verdict.stableValue !== undefined
        ? html`<dt>Stable revision's value</dt><dd data-testid="gate-stable">${number(verdict.stableValue)}</dd>` : ""}
      <dt>Examples</dt><dd data-testid="gate-examples">${verdict.examples}${gate?.dataset ? html` from <code>${gate.dataset}</code>` : ""}</dd>
      ${verdict.message ? html`<dt>Message</dt><dd>${verdict.message}</dd>` : ""}
    </dl>
  </div>`;
}
