// The portal's shell: the page for the route, the navigation and the API key prompt.
// The page names the gateway (for "try it") in its root element.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { apiKey, onUnauthorised } from "./api.js";
import { ApplyPage } from "./apply.js";
import { html } from "./html.js";
import { ModelPage } from "./model.js";
import { ModelsPage } from "./models.js";
import { ReleasesPage } from "./releases.js";
import { useRoute } from "./routes.js";

function KeyForm({ onDone }) {
  const [value, setValue] = useState("");
  const save = (event) => {
    event.preventDefault();
    apiKey.set(value.trim());
    onDone();
  };
  return html`<form class="key-form" onSubmit=${save} aria-label="Sign in with an API key">
    <label>API key <input type="password" autocomplete="off" value=${value} placeholder="mpk_…"
      onInput=${(e) => setValue(e.target.value)} /></label>
    <button type="submit" class="primary">Use key</button>
  </form>`;
}

const settings = { gatewayUrl: document.getElementById("portal").dataset.gatewayUrl };

function App() {
  const route = useRoute();
  const [asking, setAsking] = useState(false);
  const [session, setSession] = useState(0); // a new key re-mounts the page, which reloads
  useEffect(() => onUnauthorised(() => setAsking(true)), []);
  const signedIn = Boolean(apiKey.get());
  return html`<div>
    <header class="top">
      <a class="brand" href="#/">modelplane</a>
      <nav aria-label="Main"><a href="#/">Models</a><a href="#/releases">Releases</a><a href="#/apply">Apply</a></nav>
      <div class="who">
        ${signedIn ? html`<span>key set</span> <button type="button" class="quiet"
          onClick=${() => { apiKey.set(""); setSession((n) => n + 1); }}>Forget key</button>`
        : html`<button type="button" class="quiet" onClick=${() => setAsking(true)}>Use an API key</button>`}
      </div>
    </header>
    ${asking ? html`<div class="notice" role="alert">
      <p>This platform needs an API key (<code>modelplane up --auth</code>): the admin key is in the state directory's <code>admin.key</code>, or make one with <code>modelplane auth keys create</code>.</p>
      <${KeyForm} onDone=${() => { setAsking(false); setSession((n) => n + 1); }} />
    </div>` : ""}
    <main key=${session}>
      ${route.page === "model" ? html`<${ModelPage} key=${`${route.namespace}/${route.name}`} namespace=${route.namespace} name=${route.name} settings=${settings} />`
        : route.page === "apply" ? html`<${ApplyPage} />`
        : route.page === "releases" ? html`<${ReleasesPage} since=${route.since} namespace=${route.namespace} model=${route.model} />`
        : html`<${ModelsPage} />`}
    </main>
  </div>`;
}

render(html`<${App} />`, document.getElementById("portal"));
