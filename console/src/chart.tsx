import { useEffect, useRef, useState } from 'preact/hooks';
import { formatNumber } from './components';

export interface Series {
  label: string;
  /** A class naming the color (see styles.css). */
  tone: string;
  values: number[];
}

/** Round axis maximum: 1, 2 or 5 times a power of ten at or above `max`. */
function niceMax(max: number): number {
  if (max <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  return [1, 2, 5, 10].map((m) => m * power).find((v) => v >= max)!;
}

/**
 * Stacked vertical bars as SVG (attributes only, no inline style: the page's CSP forbids it). The numbers are also
 * in a table next to it for screen readers and exact values.
 */
export function BarChart({ title, labels, series, unit }: { title: string; labels: string[]; series: Series[]; unit: string }) {
  // Drawn at the width it is shown at, so labels keep their size on a phone instead of being scaled down.
  const box = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(720);
  useEffect(() => {
    const observer = new ResizeObserver(([entry]) => entry && setWidth(Math.max(240, Math.round(entry.contentRect.width))));
    observer.observe(box.current!);
    return () => observer.disconnect();
  }, []);
  const height = 220;
  const pad = { left: 52, right: 8, top: 12, bottom: 28 };
  const totals = labels.map((_, i) => series.reduce((sum, s) => sum + (s.values[i] ?? 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const step = plotW / Math.max(1, labels.length);
  const barW = Math.max(2, Math.min(28, step * 0.7));
  const y = (v: number) => pad.top + plotH - (v / max) * plotH;
  // As many day labels as fit, about one per 80 px.
  const every = Math.ceil(labels.length / Math.max(1, Math.floor(plotW / 80)));
  return (
    <figure class="chart">
      <figcaption>
        <span class="chart-title">{title}</span>
        <span class="legend">
          {series.map((s) => (
            <span key={s.label} class="legend-item">
              <svg width="10" height="10" aria-hidden="true">
                <rect width="10" height="10" rx="2" class={s.tone} />
              </svg>
              {s.label}
            </span>
          ))}
        </span>
      </figcaption>
      <div ref={box}>
      <svg viewBox={`0 0 ${width} ${height}`} width={width} height={height} role="img" aria-label={`${title}, ${unit}`} class="chart-svg">
        {[0, 0.5, 1].map((f) => (
          <g key={f}>
            <line x1={pad.left} x2={width - pad.right} y1={y(max * f)} y2={y(max * f)} class="grid" />
            <text x={pad.left - 6} y={y(max * f) + 4} text-anchor="end" class="axis">
              {formatNumber(max * f, 1)}
            </text>
          </g>
        ))}
        {labels.map((label, i) => {
          let base = 0;
          const x = pad.left + i * step + (step - barW) / 2;
          return (
            <g key={label}>
              {series.map((s) => {
                const v = s.values[i] ?? 0;
                const rect = v > 0 ? <rect key={s.label} x={x} y={y(base + v)} width={barW} height={y(base) - y(base + v)} class={s.tone}><title>{`${label}: ${formatNumber(v, 2)} ${s.label}`}</title></rect> : null;
                base += v;
                return rect;
              })}
              {i % every === 0 && (
                <text x={x + barW / 2} y={height - 8} text-anchor="middle" class="axis">
                  {label}
                </text>
              )}
            </g>
          );
        })}
      </svg>
      </div>
    </figure>
  );
}
