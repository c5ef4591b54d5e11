import { useState } from 'preact/hooks';
import type { Api, UsageTotal } from '../api';
import { BarChart } from '../chart';
import { ErrorMessage, formatNumber, Spinner, useLoad } from '../components';

const DAY_MS = 86_400_000;

function isoDay(date: Date): string {
  return date.toISOString().slice(0, 10);
}

/** Every UTC day from `from` to `to` (exclusive), so days without runs show as empty bars. */
function daysBetween(from: string, to: string): string[] {
  const days: string[] = [];
  for (let t = Date.parse(from); t < Date.parse(to); t += DAY_MS) days.push(isoDay(new Date(t)));
  return days;
}

function shortLabel(name: string): string {
  return name.length > 14 ? `${name.slice(0, 13)}…` : name;
}

const RANGES = [
  { days: 7, label: 'Last 7 days' },
  { days: 30, label: 'Last 30 days' },
  { days: 90, label: 'Last 90 days' },
];

export function UsagePage({ api }: { api: Api }) {
  const [range, setRange] = useState(30);
  const to = isoDay(new Date(Date.now() + DAY_MS));
  const from = isoDay(new Date(Date.now() - (range - 1) * DAY_MS));
  const data = useLoad(
    async () => {
      const [byDay, byFinetune, finetunes] = await Promise.all([
        api.usage(from, to, 'day'),
        api.usage(from, to, 'finetune'),
        api.finetunes().catch(() => []),
      ]);
      return { byDay, byFinetune, names: new Map(finetunes.map((f) => [f.id, f.name])) };
    },
    [from, to],
  );
  const days = daysBetween(from, to);
  const byKey = new Map<string | null, UsageTotal>((data.data?.byDay ?? []).map((u) => [u.key, u]));
  const perDay = days.map((d) => byKey.get(d));
  const totals = (data.data?.byDay ?? []).reduce(
    (sum, u) => ({ requests: sum.requests + u.requests, tokens: sum.tokens + u.total_tokens, neurons: sum.neurons + u.neurons }),
    { requests: 0, tokens: 0, neurons: 0 },
  );
  const finetuneRows = [...(data.data?.byFinetune ?? [])].sort((a, b) => b.total_tokens - a.total_tokens);
  const finetuneName = (key: string | null) => (key === null ? 'base model (no finetune)' : (data.data?.names.get(key) ?? key));
  return (
    <div class="page">
      <div class="page-head page-head-row">
        <div>
          <h1>Usage</h1>
          <p class="muted">Tokens and neurons of this account’s runs, by UTC day and by finetune.</p>
        </div>
        <label class="field field-inline">
          <span>Period</span>
          <select value={range} onChange={(e) => setRange(Number(e.currentTarget.value))}>
            {RANGES.map((r) => (
              <option key={r.days} value={r.days}>
                {r.label}
              </option>
            ))}
          </select>
        </label>
      </div>
      {data.loading && <Spinner />}
      <ErrorMessage error={data.error} onRetry={data.reload} />
      {data.data && (
        <>
          <div class="kpis">
            <div class="card kpi">
              <span class="kpi-label">Requests</span>
              <span class="kpi-value">{formatNumber(totals.requests)}</span>
            </div>
            <div class="card kpi">
              <span class="kpi-label">Tokens</span>
              <span class="kpi-value">{formatNumber(totals.tokens)}</span>
            </div>
            <div class="card kpi">
              <span class="kpi-label">Neurons</span>
              <span class="kpi-value">{formatNumber(totals.neurons, 2)}</span>
            </div>
          </div>
          <div class="card">
            <BarChart
              title="Tokens per day"
              unit="tokens"
              labels={days.map((d) => d.slice(5))}
              series={[
                { label: 'prompt', tone: 'tone-1', values: perDay.map((u) => u?.prompt_tokens ?? 0) },
                { label: 'completion', tone: 'tone-2', values: perDay.map((u) => u?.completion_tokens ?? 0) },
              ]}
            />
          </div>
          <div class="card">
            <BarChart title="Neurons per day" unit="neurons" labels={days.map((d) => d.slice(5))} series={[{ label: 'neurons', tone: 'tone-3', values: perDay.map((u) => u?.neurons ?? 0) }]} />
          </div>
          <div class="card">
            {finetuneRows.length === 0 ? (
              <p class="muted">No runs in this period: nothing to show per finetune.</p>
            ) : (
              <>
              <BarChart
                title="Tokens per finetune"
                unit="tokens"
                labels={finetuneRows.map((u) => shortLabel(finetuneName(u.key)))}
                series={[
                  { label: 'prompt', tone: 'tone-1', values: finetuneRows.map((u) => u.prompt_tokens) },
                  { label: 'completion', tone: 'tone-2', values: finetuneRows.map((u) => u.completion_tokens) },
                ]}
              />
              <div class="table-wrap">
                <table class="table">
                  <thead>
                    <tr>
                      <th scope="col">Finetune</th>
                      <th scope="col" class="num hide-narrow">Requests</th>
                      <th scope="col" class="num">Prompt</th>
                      <th scope="col" class="num">Completion</th>
                      <th scope="col" class="num">Neurons</th>
                      <th scope="col" class="hide-narrow">Share of tokens</th>
                    </tr>
                  </thead>
                  <tbody>
                    {finetuneRows.map((u) => (
                      <tr key={String(u.key)}>
                        <td>{u.key === null ? <span class="muted">{finetuneName(u.key)}</span> : <a href={`#/finetunes/${u.key}`}>{finetuneName(u.key)}</a>}</td>
                        <td class="num hide-narrow">{formatNumber(u.requests)}</td>
                        <td class="num">{formatNumber(u.prompt_tokens)}</td>
                        <td class="num">{formatNumber(u.completion_tokens)}</td>
                        <td class="num">{formatNumber(u.neurons, 2)}</td>
                        <td class="hide-narrow">
                          <meter min={0} max={Math.max(1, totals.tokens)} value={u.total_tokens} aria-label={`share of tokens: ${finetuneName(u.key)}`} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              </>
            )}
          </div>
        </>
      )}
    </div>
  );
}
