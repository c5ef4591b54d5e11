import { useState } from 'preact/hooks';
import type { Api, ModelCard } from '../api';
import { ErrorMessage, Spinner, useLoad } from '../components';
import { branch, describeFields } from '../schema';

function property(model: ModelCard, id: string): string | undefined {
  const found = model.properties.find((p) => p.property_id === id);
  return found === undefined ? undefined : typeof found.value === 'string' ? found.value : JSON.stringify(found.value);
}

const LIMIT_LABELS: Record<string, string> = {
  context_length_limit: 'Context (tokens)',
  sequence_length_limit: 'Sequence (tokens)',
  max_batch_prefill_tokens: 'Batch prefill (tokens)',
  max_input_length: 'Input (tokens)',
  max_total_tokens: 'Total (tokens)',
};

const HIDDEN_PROPERTIES = new Set(['lora', 'beta', 'constellation_config']);

function SchemaView({ api, model }: { api: Api; model: string }) {
  const schema = useLoad(() => api.schema(model), [model]);
  if (schema.loading) return <Spinner label="Loading schema…" />;
  if (schema.error) return <ErrorMessage error={schema.error} onRetry={schema.reload} />;
  const input = schema.data!.input;
  const branches = (['prompt', 'messages'] as const).map((key) => ({ key, fields: describeFields(branch(input, key)) })).filter((b) => b.fields.length);
  return (
    <div class="schema">
      {branches.map(({ key, fields }) => (
        <div key={key}>
          <h4>Input with {key === 'prompt' ? 'a prompt' : 'messages'}</h4>
          <table class="table table-compact">
            <thead>
              <tr>
                <th scope="col">Field</th>
                <th scope="col">Type</th>
                <th scope="col">Allowed</th>
              </tr>
            </thead>
            <tbody>
              {fields.map((f) => (
                <tr key={f.name}>
                  <td>
                    <code>{f.name}</code>
                    {f.required && <span class="req"> required</span>}
                  </td>
                  <td>{f.type}</td>
                  <td>{f.notes || '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ))}
      <details>
        <summary>Raw JSON Schema</summary>
        <pre class="code">{JSON.stringify(input, null, 2)}</pre>
      </details>
    </div>
  );
}

export function ModelsPage({ api }: { api: Api }) {
  const models = useLoad(() => api.models(), []);
  const runnable = useLoad(() => api.runnableModels().catch(() => new Set<string>()), []);
  const [filter, setFilter] = useState('');
  const [loraOnly, setLoraOnly] = useState(false);
  const [open, setOpen] = useState<string>();
  // Models that can run here (they have an engine) come first.
  const hasEngine = (m: ModelCard) => runnable.data?.has(m.name) ?? false;
  const ordered = [...(models.data ?? [])].sort((a, b) => Number(hasEngine(b)) - Number(hasEngine(a)));
  const shown = ordered.filter(
    (m) =>
      (!loraOnly || property(m, 'lora') === 'true') &&
      (filter === '' || `${m.name} ${m.description}`.toLowerCase().includes(filter.toLowerCase())),
  );
  return (
    <div class="page">
      <div class="page-head">
        <h1>Models</h1>
        <p class="muted">The catalog: which models take adapters, their limits and the input each accepts.</p>
      </div>
      <div class="toolbar">
        <label class="field field-inline grow">
          <span class="sr-only">Search models</span>
          <input type="search" placeholder="Search by name or description" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
        </label>
        <label class="check">
          <input type="checkbox" checked={loraOnly} onChange={(e) => setLoraOnly(e.currentTarget.checked)} /> LoRA bases only
        </label>
      </div>
      {models.loading && <Spinner />}
      <ErrorMessage error={models.error} onRetry={models.reload} />
      <div class="model-list">
        {shown.map((m) => {
          const lora = property(m, 'lora') === 'true';
          // Card properties other than the flags shown as badges; the constellation config is the provider's internals.
          const limits = m.properties
            .filter((p) => !HIDDEN_PROPERTIES.has(p.property_id))
            .map((p) => [LIMIT_LABELS[p.property_id] ?? p.property_id, property(m, p.property_id)!] as const);
          const expanded = open === m.name;
          return (
            <article class="card model" key={m.name}>
              <div class="model-head">
                <h2 class="model-name">
                  <code>{m.name}</code>
                </h2>
                <div class="badges">
                  {lora ? <span class="badge badge-lora">LoRA</span> : <span class="badge">no LoRA</span>}
                  {property(m, 'beta') === 'true' && <span class="badge">beta</span>}
                  {runnable.data?.has(m.name) ? <span class="badge badge-ready">engine</span> : runnable.data && <span class="badge badge-muted">no engine</span>}
                </div>
              </div>
              <p>{m.description || <span class="muted">No description.</span>}</p>
              <dl class="facts">
                <div>
                  <dt>Task</dt>
                  <dd>{m.task.name}</dd>
                </div>
                {limits.map(([label, value]) => (
                  <div key={label}>
                    <dt>{label}</dt>
                    <dd>{/^https:\/\//.test(value) ? <a href={value} rel="noreferrer noopener" target="_blank">{new URL(value).host}</a> : value}</dd>
                  </div>
                ))}
              </dl>
              <button type="button" class="btn btn-small" aria-expanded={expanded} onClick={() => setOpen(expanded ? undefined : m.name)}>
                {expanded ? 'Hide input schema' : 'Show input schema'}
              </button>
              {expanded && <SchemaView api={api} model={m.name} />}
            </article>
          );
        })}
        {models.data && shown.length === 0 && <p class="muted">No model matches.</p>}
      </div>
    </div>
  );
}
