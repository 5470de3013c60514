// The control API as the portal uses it: the same public endpoints the CLI calls.
// A key (with `modelplane up --auth`) is kept for this browser tab only.

export const MODELS = "/apis/modelplane.io/v1alpha1";
export const METRICS = "/apis/metrics.modelplane.io/v1alpha1";
export const RELEASES = "/apis/releases.modelplane.io/v1alpha1";
export const USAGE = "/apis/usage.modelplane.io/v1alpha1";
const KEY = "modelplane.apiKey";

export class ApiError extends Error {
  constructor(status, message, causes = []) {
    super(message);
    this.status = status;
    this.causes = causes;
  }
}

export const apiKey = {
  get: () => sessionStorage.getItem(KEY) || "",
  set: (key) => (key ? sessionStorage.setItem(KEY, key) : sessionStorage.removeItem(KEY)),
};

export function authHeaders() {
  const key = apiKey.get();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// Listeners hear of a 401, so the shell can ask for a key.
const unauthorised = new Set();
export const onUnauthorised = (listener) => {
  unauthorised.add(listener);
  return () => unauthorised.delete(listener);
};

export async function call(method, path, { body, type = "application/json", text = false, headers = {} } = {}) {
  const init = { method, headers: { ...authHeaders(), ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers["Content-Type"] = type;
  }
  const reply = await fetch(path, init);
  if (!reply.ok) {
    if (reply.status === 401) unauthorised.forEach((listener) => listener());
    let message = `${reply.status} ${reply.statusText}`;
    let causes = [];
    try {
      const status = await reply.json();
      message = status.message || message;
      causes = status.details?.causes || [];
    } catch {
      // not a Status object: keep the HTTP status line
    }
    throw new ApiError(reply.status, message, causes);
  }
  if (reply.status === 204) return { reply, data: null };
  return { reply, data: text ? await reply.text() : await reply.json() };
}

export const get = async (path) => (await call("GET", path)).data;
export const getText = async (path) => (await call("GET", path, { text: true })).data;

export const modelPath = (namespace, name) =>
  `${MODELS}/namespaces/${encodeURIComponent(namespace)}/models/${encodeURIComponent(name)}`;

// Dry runs return the object as it would be stored and the revision digest it would serve.
export async function preview(method, path, body, type) {
  const sep = path.includes("?") ? "&" : "?";
  const { reply, data } = await call(method, `${path}${sep}dryRun=All`, { body, type });
  return { model: data, digest: reply.headers.get("Modelplane-Revision-Digest") };
}

export const ROLLOUT_COMMAND = "modelplane.io/rollout-command";
export const FREEZE_OVERRIDE = "modelplane.io/freeze-override";

export function rolloutCommand(namespace, name, verb) {
  const value = `${verb}:${new Date().toISOString()}`;
  const patch = { metadata: { annotations: { [ROLLOUT_COMMAND]: value } } };
  return call("PATCH", modelPath(namespace, name), {
    body: patch,
    type: "application/merge-patch+json",
  });
}
