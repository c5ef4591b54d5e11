/**
 * A strict parser of Prometheus' text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format): anything the format does not
 * allow, or a histogram that is not consistent (buckets cumulative, `+Inf` equal to `_count`), throws with the line.
 * The parsers on npm lose the labels of labelled histograms, which is exactly what the tests look at.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  /** The sample's own name, e.g. `x_bucket` in family `x`. */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  name: string;
  type: MetricType;
  help: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const TYPES = new Set<MetricType>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES: Partial<Record<MetricType, string[]>> = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count'] };

class LineError extends Error {
  constructor(line: number, text: string, problem: string) {
    super(`line ${line}: ${problem}: ${JSON.stringify(text)}`);
  }
}

/** Prometheus reads values with Go's ParseFloat, which takes NaN and Inf in any case (prom-client writes `Nan`). */
function parseValue(text: string): number {
  const special = text.toLowerCase();
  if (special === '+inf' || special === 'inf') return Infinity;
  if (special === '-inf') return -Infinity;
  if (special === 'nan') return NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) throw new Error(`not a float: ${text}`);
  return Number(text);
}

function unescape(text: string, quotes: boolean): string {
  return text.replace(/\\(.)/g, (whole, c: string) => (c === 'n' ? '\n' : c === '\\' ? '\\' : quotes && c === '"' ? '"' : whole));
}

/** `{a="1",b="2"}` at the start of `rest`; returns the labels and what follows. */
function parseLabels(rest: string): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let at = 1;
  for (;;) {
    while (rest[at] === ' ') at++;
    if (rest[at] === '}') return { labels, rest: rest.slice(at + 1) };
    const name = LABEL_NAME.exec(rest.slice(at))?.[0];
    if (!name) throw new Error('bad label name');
    if (name in labels) throw new Error(`label ${name} twice`);
    at += name.length;
    while (rest[at] === ' ') at++;
    if (rest[at] !== '=' || rest[at + 1] !== '"') throw new Error(`label ${name}: expected ="`);
    let end = at + 2;
    while (end < rest.length && rest[end] !== '"') end += rest[end] === '\\' ? 2 : 1;
    if (end >= rest.length) throw new Error(`label ${name}: unterminated value`);
    labels[name] = unescape(rest.slice(at + 2, end), true);
    at = end + 1;
    while (rest[at] === ' ') at++;
    if (rest[at] === ',') at++;
    else if (rest[at] !== '}') throw new Error(`after label ${name}: expected , or }`);
  }
}

function familyOf(sampleName: string, families: Map<string, MetricFamily>): MetricFamily | undefined {
  const own = families.get(sampleName);
  if (own) return own;
  for (const [name, family] of families) {
    if (SUFFIXES[family.type]?.some((suffix) => sampleName === name + suffix)) return family;
  }
  return undefined;
}

const seriesKey = (labels: Record<string, string>, without?: string) =>
  JSON.stringify(Object.entries(labels).filter(([k]) => k !== without).sort(([a], [b]) => a.localeCompare(b)));

function checkHistogram(family: MetricFamily): void {
  const series = new Map<string, { buckets: [number, number][]; count?: number; sum?: number }>();
  for (const sample of family.samples) {
    const key = seriesKey(sample.labels, 'le');
    const entry = series.get(key) ?? { buckets: [] };
    series.set(key, entry);
    if (sample.name.endsWith('_bucket')) {
      if (sample.labels.le === undefined) throw new Error(`${family.name}: a bucket without le`);
      entry.buckets.push([parseValue(sample.labels.le), sample.value]);
    } else if (sample.name.endsWith('_count')) entry.count = sample.value;
    else if (sample.name.endsWith('_sum')) entry.sum = sample.value;
    else throw new Error(`${family.name}: sample ${sample.name} in a histogram`);
  }
  for (const [key, { buckets, count, sum }] of series) {
    const sorted = [...buckets].sort(([a], [b]) => a - b);
    const last = sorted.at(-1);
    if (count === undefined || sum === undefined || !last || last[0] !== Infinity) {
      throw new Error(`${family.name}${key}: needs _count, _sum and a +Inf bucket`);
    }
    sorted.forEach(([le, n], i) => {
      if (i > 0 && n < sorted[i - 1][1]) throw new Error(`${family.name}${key}: bucket le=${le} is not cumulative`);
    });
    if (last[1] !== count) throw new Error(`${family.name}${key}: +Inf bucket ${last[1]} differs from _count ${count}`);
  }
}

export function parsePrometheusText(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  const series = new Set<string>();
  const finished = new Set<string>();
  const metadata = new Set<string>();
  let current: MetricFamily | undefined;
  const enter = (family: MetricFamily) => {
    if (current && current !== family) finished.add(current.name);
    if (finished.has(family.name)) throw new Error(`samples of ${family.name} are not grouped together`);
    current = family;
  };

  text.split('\n').forEach((line, index) => {
    const n = index + 1;
    try {
      if (line.trim() === '') return;
      if (line.startsWith('#')) {
        const meta = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
        if (!meta) return; // a comment
        const [, kind, name, rest = ''] = meta;
        if (METRIC_NAME.exec(name)?.[0] !== name) throw new Error('bad metric name');
        let family = families.get(name);
        if (!family) {
          family = { name, type: 'untyped', help: '', samples: [] };
          families.set(name, family);
        }
        enter(family);
        const seen = `${kind} ${name}`;
        if (metadata.has(seen)) throw new Error(`second ${kind} line`);
        metadata.add(seen);
        if (kind === 'HELP') family.help = unescape(rest, false);
        else {
          if (!TYPES.has(rest.trim() as MetricType)) throw new Error(`unknown type ${rest}`);
          if (family.samples.length > 0) throw new Error('TYPE after samples');
          family.type = rest.trim() as MetricType;
        }
        return;
      }
      const name = METRIC_NAME.exec(line)?.[0];
      if (!name) throw new Error('bad metric name');
      let rest = line.slice(name.length);
      let labels: Record<string, string> = {};
      if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest));
      const fields = rest.trim().split(/[ \t]+/);
      if (!/^[ \t]/.test(rest) || fields.length > 2) throw new Error('expected a value and an optional timestamp');
      if (fields[1] !== undefined && !/^-?\d+$/.test(fields[1])) throw new Error('bad timestamp');
      let family = familyOf(name, families);
      if (!family) {
        family = { name, type: 'untyped', help: '', samples: [] };
        families.set(name, family);
      }
      enter(family);
      const key = name + seriesKey(labels);
      if (series.has(key)) throw new Error('duplicate series');
      series.add(key);
      family.samples.push({ name, labels, value: parseValue(fields[0]) });
    } catch (error) {
      throw new LineError(n, line, (error as Error).message);
    }
  });
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;
}

/** The value of the sample `name` whose labels include `labels`; throws unless exactly one matches. */
export function sampleValue(families: Map<string, MetricFamily>, name: string, labels: Record<string, string> = {}): number {
  const family = familyOf(name, families);
  const matches = (family?.samples ?? []).filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (matches.length !== 1) throw new Error(`${matches.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return matches[0].value;
}
