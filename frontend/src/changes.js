// Every action on a model shows what it will change before it does it: a dry run through the
// control API gives the object as it would be stored and the revision it would serve.
import { useEffect, useState } from "preact/hooks";
import { call, preview } from "./api.js";
import { changed, diffLines, toYaml } from "./format.js";
import { html } from "./html.js";
import { DiffView, ErrorNote } from "./parts.js";

const steps = (spec) =>
  spec.rollout?.strategy === "Immediate"
    ? "at once (Immediate)"
    : `by canary: ${(spec.rollout?.steps || []).map((s) => `${s.weight}%`).join(" → ")} → 100%, each step analysed`;

// What a change does to a model, in words: a new revision (and how it rolls out) or not.
export function effect(current, proposed, digest) {
  if (!current) return `Creates ${proposed.metadata.namespace}/${proposed.metadata.name}; its first revision serves at once.`;
  const served = (current.status?.revisions || []).map((r) => r.digest);
  if (digest && !served.includes(digest)) return `Makes a new revision, rolled out ${steps(proposed.spec)}.`;
  if (digest && served.includes(digest) && served.at(-1) !== digest)
    return "Returns to a revision that is still running.";
  return "No new revision: replicas keep serving; only scaling, rollout or metadata change.";
}

// A change in two steps: preview (dry run, diff, effect), then apply the same request.
export function PlannedChange({ title, current, request, onDone, onCancel }) {
  const [state, setState] = useState({ phase: "idle" });
  const asked = JSON.stringify(request);
  useEffect(() => setState({ phase: "idle" }), [asked]); // an edit voids the last preview
  const show = async () => {
    setState({ phase: "previewing" });
    try {
      const found = await preview(request.method, request.path, request.body, request.type);
      const before = current ? toYaml(current.spec) : "";
      const lines = diffLines(before, toYaml(found.model.spec));
      const what = effect(current, found.model, found.digest);
      setState({ phase: "previewed", lines, effect: what, request });
    } catch (error) {
      setState({ phase: "failed", error });
    }
  };
  const apply = async () => {
    const sent = state.request; // exactly what was previewed
    setState((old) => ({ ...old, phase: "applying" }));
    try {
      const { data } = await call(sent.method, sent.path, { body: sent.body, type: sent.type });
      setState((old) => ({ phase: "done", effect: old.effect }));
      onDone?.(data);
    } catch (error) {
      setState({ phase: "failed", error });
    }
  };
  return html`<div class="planned" aria-live="polite">
    <div class="row">
      <button type="button" onClick=${show} disabled=${state.phase === "previewing" || state.phase === "applying"}>
        Preview ${title}
      </button>
      ${onCancel ? html`<button type="button" class="quiet" onClick=${onCancel}>Cancel</button>` : ""}
    </div>
    <${ErrorNote} error=${state.error} />
    ${state.lines ? html`<div class="preview">
      <p class="effect"><strong>What this changes:</strong> ${state.effect}</p>
      ${changed(state.lines)
        ? html`<${DiffView} lines=${state.lines} label="Changes to the spec" />`
        : html`<p class="muted">The spec stays the same.</p>`}
      <button type="button" class="primary" onClick=${apply} disabled=${state.phase !== "previewed"}>
        Apply ${title}
      </button>
    </div>` : ""}
    ${state.phase === "done" ? html`<p class="ok-note" role="status">Applied: ${state.effect}</p>` : ""}
  </div>`;
}
