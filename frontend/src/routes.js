// Where the portal is: a hash route (the control API serves one page), `#/models/NS/NAME`,
// `#/apply` or `#/releases?since=…&namespace=…&model=…`, so each view has a link of its own.
import { useEffect, useState } from "preact/hooks";

const decoded = (part) => {
  try {
    return decodeURIComponent(part);
  } catch {
    return part; // a malformed escape: shown as typed, found by no model
  }
};

export function parseRoute(hash) {
  const [path, query = ""] = hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").map(decoded);
  if (parts[0] === "models" && parts.length === 3) return { page: "model", namespace: parts[1], name: parts[2] };
  if (parts[0] === "apply") return { page: "apply" };
  if (parts[0] === "releases") {
    const given = new URLSearchParams(query);
    return { page: "releases", since: given.get("since") || "30d", namespace: given.get("namespace") || "", model: given.get("model") || "" };
  }
  return { page: "models" };
}

export function useRoute() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const changed = () => setHash(location.hash);
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return parseRoute(hash);
}

export const modelHash = (namespace, name) => `#/models/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`;

// The Releases page for a period, a namespace and a Model (each optional: 30 days, every team).
export function releasesHash({ since = "30d", namespace = "", model = "" }) {
  const query = new URLSearchParams();
  if (since !== "30d") query.set("since", since);
  if (namespace) query.set("namespace", namespace);
  if (namespace && model) query.set("model", model);
  const text = query.toString();
  return text ? `#/releases?${text}` : "#/releases";
}
