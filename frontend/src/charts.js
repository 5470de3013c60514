// Time series charts (uPlot): one line per revision, thresholds as dashed lines; or counts per
// period as bars, side by side.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import { duration } from "./format.js";
import { html } from "./html.js";

const clock = (seconds) => new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const day = (seconds) => new Date(seconds * 1000).toLocaleDateString([], { month: "short", day: "numeric" });

const PALETTE = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2"];
export const colour = (index) => PALETTE[index % PALETTE.length];

// A series drawn as bars (`bars`: -1 left of its tick, 1 right of it, 0 centred) is filled.
const drawn = (s, i) => {
  const stroke = s.colour || colour(i);
  if (s.bars === undefined) return { label: s.label, stroke, width: 2, dash: s.dash, spanGaps: false };
  return { label: s.label, stroke, fill: stroke, width: 1, paths: uPlot.paths.bars({ size: [0.4, 40], align: s.bars }), points: { show: false } };
};

// series: [{label, points: [[time, value|null]...], dash?, colour?, bars?}]; `dates`: ticks
// name days, not times of day; `span`: the times the x axis covers, when not the points';
// `top`: the least top of the y axis under bars (1 for counts, less for fractions of hours).
export function Chart({ title, unit, series, height = 180, dates = false, span = null, empty = "no requests yet", about = "per revision", top = 1 }) {
  const box = useRef(null);
  const plot = useRef(null);
  const covered = useRef(span);
  covered.current = span; // read at each redraw: the plot outlives a render
  const times = [...new Set(series.flatMap((s) => s.points.map(([t]) => t)))].sort((a, b) => a - b);
  const columns = series.map((s) => {
    const byTime = new Map(s.points);
    return times.map((t) => (byTime.has(t) ? byTime.get(t) : null));
  });
  const shape = series.map((s) => s.label).join("|");
  const counts = series.some((s) => s.bars !== undefined); // bars stand on zero
  useEffect(() => {
    const width = Math.max(box.current.clientWidth, 280);
    const options = {
      width,
      height,
      legend: { live: false },
      scales: {
        x: span ? { time: true, range: (_, min, max) => covered.current || [min, max] } : { time: true },
        ...(counts ? { y: { range: (_, __, max) => [0, Math.max(top, max)] } } : {}),
      },
      axes: [{ values: (_, ticks) => ticks.map(dates ? day : clock) }, { label: unit, size: 60 }],
      series: [{}, ...series.map(drawn)],
    };
    plot.current = new uPlot(options, [times, ...columns], box.current);
    const resize = () => plot.current.setSize({ width: Math.max(box.current.clientWidth, 280), height });
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      plot.current.destroy();
    };
  }, [shape]);
  useEffect(() => {
    plot.current?.setData([times, ...columns]);
  });
  const blank = !series.some((s) => s.points.some(([, v]) => v !== null));
  return html`<figure class="chart">
    <figcaption>${title}${blank ? html` <span class="muted">(${empty})</span>` : ""}</figcaption>
    <div ref=${box} role="img" aria-label=${`${title} over time, ${about}`}></div>
  </figure>`;
}

const WHEN = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
const STEPS = { 3600: "hour", 86400: "day", 604800: "week" };
const begins = (bucket) => Date.parse(bucket.start) / 1000;

// A report's trend (buckets of `step` seconds, each with its `start`) on a chart's x axis: the
// step in words, whether ticks name days, where each bucket's figures sit (its middle), the
// span the buckets cover.
export function stepAxis(trend, step) {
  return {
    per: STEPS[step] || duration(step),
    dates: step >= 86400,
    at: (bucket) => begins(bucket) + step / 2,
    span: trend.length ? [begins(trend[0]), begins(trend.at(-1)) + step] : null,
  };
}

export const stepStart = (bucket) => new Date(bucket.start).toLocaleString([], WHEN);
