// Apply a manifest (one or more Models) from the browser, as `modelplane apply -f` does: each
// Model is created or replaced, and each shows its preview before anything is stored.
import { loadAll } from "js-yaml";
import { useState } from "preact/hooks";
import { ApiError, MODELS, call, modelPath } from "./api.js";
import { html } from "./html.js";
import { PlannedChange } from "./changes.js";
import { ErrorNote } from "./parts.js";

const EXAMPLE = `apiVersion: modelplane.io/v1alpha1
kind: Model
metadata:
  name: my-model
  namespace: default
spec:
  source:
    uri: file://examples/iris/model.onnx
  format: onnx
  task: classification
`;

async function plan(text) {
  let documents;
  try {
    documents = loadAll(text).filter((d) => d !== null && d !== undefined);
  } catch (error) {
    throw new ApiError(400, `The manifest is not valid YAML: ${error.message}`);
  }
  if (!documents.length) throw new ApiError(400, "The manifest is empty.");
  return Promise.all(
    documents.map(async (document, index) => {
      if (typeof document !== "object" || Array.isArray(document) || document.kind !== "Model") {
        throw new ApiError(400, `Document ${index + 1} is not a Model (kind: ${document?.kind ?? "missing"}).`);
      }
      const meta = document.metadata || {};
      const namespace = meta.namespace || "default";
      if (!meta.name) throw new ApiError(400, `Document ${index + 1} has no metadata.name.`);
      document.metadata = { ...meta, namespace };
      const path = modelPath(namespace, meta.name);
      try {
        const current = (await call("GET", path)).data;
        return { key: `${namespace}/${meta.name}`, current, request: { method: "PUT", path, body: document } };
      } catch (error) {
        if (error.status !== 404) throw error;
        const collection = `${MODELS}/namespaces/${encodeURIComponent(namespace)}/models`;
        return { key: `${namespace}/${meta.name}`, current: null, request: { method: "POST", path: collection, body: document } };
      }
    }),
  );
}

export function ApplyPage() {
  const [text, setText] = useState(EXAMPLE);
  const [planned, setPlanned] = useState(null);
  const [error, setError] = useState(null);
  const read = async (event) => {
    event.preventDefault();
    setError(null);
    setPlanned(null);
    try {
      setPlanned(await plan(text));
    } catch (failure) {
      setError(failure);
    }
  };
  return html`<section aria-labelledby="apply-title">
    <p class="crumbs"><a href="#/">Models</a></p>
    <h1 id="apply-title">Apply a model</h1>
    <form onSubmit=${read} class="form">
      <label for="manifest">Manifest (YAML; several Models separated by <code>---</code>)</label>
      <textarea id="manifest" rows="16" spellcheck="false" value=${text}
        onInput=${(e) => { setText(e.target.value); setPlanned(null); }}></textarea>
      <button type="submit">Read the manifest</button>
    </form>
    <${ErrorNote} error=${error} />
    ${(planned || []).map((item) => html`<div class="panel" data-key=${item.key}>
      <h2>${item.key} <span class="tag">${item.current ? "replace" : "create"}</span></h2>
      <${PlannedChange} title=${item.key} current=${item.current} request=${item.request}
        onDone=${() => { location.hash = `#/models/${item.key}`; }} />
    </div>`)}
  </section>`;
}
