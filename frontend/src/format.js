// Text the portal shows: YAML for specs, line diffs between them, numbers and times.

const PLAIN = /^[A-Za-z_][\w./:@-]*$/;
const RESERVED = /^(true|false|null|yes|no|on|off|~|[-+.\d].*)$/i;

function scalar(value) {
  if (typeof value === "string") {
    return PLAIN.test(value) && !RESERVED.test(value) ? value : JSON.stringify(value);
  }
  return JSON.stringify(value);
}

// A YAML rendering of JSON data, keys in their given order: for reading and diffing.
export function toYaml(value, indent = "") {
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return value
      .map((item) => {
        const inner = toYaml(item, indent + "  ");
        return `${indent}- ${isBlock(item) ? inner.trimStart() : inner}`;
      })
      .join("\n");
  }
  if (value && typeof value === "object") {
    const keys = Object.keys(value);
    if (!keys.length) return "{}";
    return keys
      .map((key) => {
        const item = value[key];
        const label = `${indent}${scalar(key)}:`;
        if (isBlock(item)) return `${label}\n${toYaml(item, indent + "  ")}`;
        return `${label} ${toYaml(item, "")}`;
      })
      .join("\n");
  }
  return scalar(value);
}

const isBlock = (v) =>
  v !== null && typeof v === "object" && (Array.isArray(v) ? v.length : Object.keys(v).length) > 0;

// Lines of `before` and `after` as [kind, text] with kind " ", "-" or "+" (longest common
// subsequence; specs are a few dozen lines, so the quadratic table is small).
export function diffLines(before, after) {
  const a = before.split("\n");
  const b = after.split("\n");
  const common = Array.from({ length: a.length + 1 }, () => new Array(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      common[i][j] = a[i] === b[j] ? common[i + 1][j + 1] + 1 : Math.max(common[i + 1][j], common[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      out.push([" ", a[i]]);
      i++;
      j++;
    } else if (common[i + 1][j] >= common[i][j + 1]) {
      out.push(["-", a[i++]]);
    } else {
      out.push(["+", b[j++]]);
    }
  }
  while (i < a.length) out.push(["-", a[i++]]);
  while (j < b.length) out.push(["+", b[j++]]);
  return out;
}

export const changed = (lines) => lines.some(([kind]) => kind !== " ");

// Only the changed lines and `context` lines around each; a skipped run becomes one "…" line.
export function hunks(lines, context = 3) {
  const near = lines.map(() => false);
  lines.forEach(([kind], index) => {
    if (kind === " ") return;
    for (let k = Math.max(0, index - context); k <= Math.min(lines.length - 1, index + context); k++) near[k] = true;
  });
  const out = [];
  lines.forEach((line, index) => {
    if (near[index]) out.push(line);
    else if (out.at(-1)?.[0] !== "…") out.push(["…", ""]);
  });
  return out;
}

// Three significant digits, without trailing zeros after a decimal point: 5000, 2.5, 0.00123.
export function number(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const text = Number(value).toPrecision(digits);
  if (text.includes("e")) return String(Number(text));
  return text.includes(".") ? text.replace(/\.?0+$/, "") : text;
}

export const percent = (value) =>
  value === null || value === undefined ? "–" : `${(value * 100).toFixed(value < 0.01 && value > 0 ? 2 : 1)}%`;

// A share as a percentage to `digits` significant digits: 0.9981 is 99.81%, -99 is -9900%.
export const share = (value, digits = 5) =>
  value === null || value === undefined ? "–" : `${number(value * 100, digits)}%`;

// A span of time as the CLI writes it (`modelplane releases`): 12s, 4m10s, 1h0m, 3d2h.
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  let whole = Math.round(seconds);
  if (whole < 60) return `${whole}s`;
  const parts = [];
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
    if (whole >= size) {
      parts.push(`${Math.floor(whole / size)}${unit}`);
      whole %= size;
    }
  }
  return parts.slice(0, 2).join("");
}

export const ms = (value) => (value === null || value === undefined ? "–" : `${number(value)} ms`);

export function since(timestamp) {
  if (!timestamp) return "";
  const seconds = Math.max(0, (Date.now() - new Date(timestamp).getTime()) / 1000);
  if (seconds < 60) return `${Math.round(seconds)}s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)}h ago`;
  return `${Math.round(seconds / 86400)}d ago`;
}

export const condition = (model, type) => (model.status?.conditions || []).find((c) => c.type === type);
