// Time series charts (uPlot): one line per revision, thresholds as dashed lines.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import { html } from "./html.js";

const clock = (seconds) => new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });

const PALETTE = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2"];
export const colour = (index) => PALETTE[index % PALETTE.length];

// series: [{label, points: [[time, value|null]...], dash?}]
export function Chart({ title, unit, series, height = 180 }) {
  const box = useRef(null);
  const plot = useRef(null);
  const times = [...new Set(series.flatMap((s) => s.points.map(([t]) => t)))].sort((a, b) => a - b);
  const columns = series.map((s) => {
    const byTime = new Map(s.points);
    return times.map((t) => (byTime.has(t) ? byTime.get(t) : null));
  });
  const shape = series.map((s) => s.label).join("|");
  useEffect(() => {
    const width = Math.max(box.current.clientWidth, 280);
    const options = {
      width,
      height,
      legend: { live: false },
      scales: { x: { time: true } },
      axes: [{ values: (_, ticks) => ticks.map(clock) }, { label: unit, size: 60 }],
      series: [
        {},
        ...series.map((s, i) => ({
          label: s.label,
          stroke: s.colour || colour(i),
          width: 2,
          dash: s.dash,
          spanGaps: false,
        })),
      ],
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
  const empty = !series.some((s) => s.points.some(([, v]) => v !== null));
  return html`<figure class="chart">
    <figcaption>${title}${empty ? html` <span class="muted">(no requests yet)</span>` : ""}</figcaption>
    <div ref=${box} role="img" aria-label=${`${title} over time, per revision`}></div>
  </figure>`;
}
