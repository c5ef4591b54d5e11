import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { Api, Finetune, Usage } from '../api';
import { CopyButton, ErrorMessage, formatNumber, Spinner, useLoad } from '../components';
import { branch, properties, samplingFields, type FieldSpec } from '../schema';
import { snippet, SNIPPET_KINDS, type RunRequest, type SnippetKind } from '../snippets';

interface Message {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

interface Pane {
  label: string;
  lora?: string;
  text: string;
  state: 'running' | 'done' | 'stopped' | 'failed';
  error?: unknown;
  usage?: Usage;
  /** Milliseconds from sending to the first text. */
  ttft?: number;
  /** Milliseconds from sending to the end. */
  total?: number;
  tokensPerSecond?: number;
}

const NO_ADAPTER = '';
/** Shown at once; the model's other sampling fields are one click away. */
const PRIMARY_FIELDS = new Set(['max_tokens', 'temperature', 'seed']);

function finetuneLabel(f: Finetune, own: boolean): string {
  return own ? f.name : `${f.name} (public)`;
}

function FieldInput({ spec, value, onChange }: { spec: FieldSpec; value: string; onChange: (v: string) => void }) {
  const range =
    spec.minimum !== undefined && spec.maximum !== undefined
      ? `${spec.minimum} – ${spec.maximum}`
      : spec.minimum !== undefined
        ? `≥ ${spec.minimum}`
        : spec.maximum !== undefined
          ? `≤ ${spec.maximum}`
          : undefined;
  const id = `field-${spec.name}`;
  return (
    <div class="field">
      <label for={id}>
        <code>{spec.name}</code>
      </label>
      <input
        id={id}
        name={spec.name}
        type="number"
        inputMode={spec.type === 'integer' ? 'numeric' : 'decimal'}
        step={spec.type === 'integer' ? 1 : 'any'}
        min={spec.minimum}
        max={spec.maximum}
        placeholder={spec.default !== undefined ? `default ${spec.default}` : 'model default'}
        value={value}
        onInput={(e) => onChange(e.currentTarget.value)}
        aria-describedby={range ? `${id}-range` : undefined}
      />
      {range && (
        <small id={`${id}-range`} class="muted">
          {range}
        </small>
      )}
    </div>
  );
}

function Output({ pane }: { pane: Pane }) {
  const ref = useRef<HTMLPreElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [pane.text]);
  const stateLabel = { running: 'generating…', done: 'done', stopped: 'stopped', failed: 'failed' }[pane.state];
  return (
    <section class="card output" aria-label={`Output: ${pane.label}`} data-state={pane.state}>
      <div class="output-head">
        <h3>{pane.label}</h3>
        <span class={`badge badge-run-${pane.state}`}>{stateLabel}</span>
      </div>
      <pre ref={ref} class="output-text" aria-live="polite" aria-busy={pane.state === 'running'}>
        {pane.text}
        {pane.state === 'running' && <span class="caret" aria-hidden="true" />}
      </pre>
      <ErrorMessage error={pane.error} />
      <dl class="stats">
        <div>
          <dt>First token</dt>
          <dd>{pane.ttft !== undefined ? `${formatNumber(pane.ttft)} ms` : '—'}</dd>
        </div>
        <div>
          <dt>Total</dt>
          <dd>{pane.total !== undefined ? `${formatNumber(pane.total)} ms` : '—'}</dd>
        </div>
        <div>
          <dt>Tokens/s</dt>
          <dd>{pane.tokensPerSecond !== undefined ? formatNumber(pane.tokensPerSecond, 1) : '—'}</dd>
        </div>
        <div>
          <dt>Tokens in / out</dt>
          <dd>{pane.usage ? `${pane.usage.prompt_tokens} / ${pane.usage.completion_tokens}` : '—'}</dd>
        </div>
      </dl>
    </section>
  );
}

export function PlaygroundPage({ api, finetuneId }: { api: Api; finetuneId?: string }) {
  const models = useLoad(() => api.models(), []);
  const runnable = useLoad(() => api.runnableModels().catch(() => undefined), []);
  const own = useLoad(() => api.finetunes(), []);
  const pub = useLoad(() => api.publicFinetunes('name').catch(() => [] as Finetune[]), []);
  const [model, setModel] = useState('');
  const [loraA, setLoraA] = useState(NO_ADAPTER);
  const [loraB, setLoraB] = useState(NO_ADAPTER);
  const [compare, setCompare] = useState(false);
  const [mode, setMode] = useState<'prompt' | 'messages'>('prompt');
  const [prompt, setPrompt] = useState('Tell me a short story about a lighthouse.');
  const [messages, setMessages] = useState<Message[]>([
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'Hello! What can you do?' },
  ]);
  const [raw, setRaw] = useState(false);
  const [stream, setStream] = useState(true);
  const [params, setParams] = useState<Record<string, string>>({});
  const [panes, setPanes] = useState<Pane[]>([]);
  const [snippetKind, setSnippetKind] = useState<SnippetKind>('curl');
  const [snippetSide, setSnippetSide] = useState(0);
  const controllers = useRef<AbortController[]>([]);
  useEffect(() => () => controllers.current.forEach((c) => c.abort()), []);

  // Text-generation models; those with an engine first (only they can answer).
  const choices = useMemo(() => {
    const list = (models.data ?? []).filter((m) => m.task.name === 'Text Generation');
    const has = (name: string) => (runnable.data ? runnable.data.has(name) : true);
    return [...list.filter((m) => has(m.name)), ...list.filter((m) => !has(m.name))];
  }, [models.data, runnable.data]);

  // A finetune named in the route picks its model and itself once the lists are there.
  useEffect(() => {
    if (!finetuneId || !own.data) return;
    const chosen = [...own.data, ...(pub.data ?? [])].find((f) => f.id === finetuneId);
    if (chosen) {
      setModel(chosen.model);
      setLoraA(chosen.id);
    }
  }, [finetuneId, own.data, pub.data]);

  const current = model || choices[0]?.name || '';
  const card = choices.find((m) => m.name === current);
  const loraCapable = card?.properties.some((p) => p.property_id === 'lora' && p.value === 'true') ?? false;
  const schema = useLoad(() => (current ? api.schema(current) : Promise.resolve(undefined)), [current]);
  const inputBranch = schema.data ? branch(schema.data.input, mode) : undefined;
  const fields = samplingFields(inputBranch);
  const acceptsRaw = 'raw' in properties(inputBranch);
  const finetunes = useMemo(() => {
    const mine = (own.data ?? []).filter((f) => f.model === current && f.status === 'ready');
    const theirs = (pub.data ?? []).filter((f) => f.model === current && f.status === 'ready' && !mine.some((m) => m.id === f.id));
    return [...mine.map((f) => ({ f, own: true })), ...theirs.map((f) => ({ f, own: false }))];
  }, [own.data, pub.data, current]);

  const running = panes.some((p) => p.state === 'running');
  const loraName = (id: string) => finetunes.find((x) => x.f.id === id)?.f.name ?? id;

  /** The body shown and sent; the finetune goes by id, which names exactly one. */
  const bodyFor = (lora: string, values = params): Record<string, unknown> => {
    const body: Record<string, unknown> = mode === 'prompt' ? { prompt } : { messages };
    if (mode === 'prompt' && acceptsRaw && raw) body.raw = true;
    for (const spec of fields) {
      const text = values[spec.name]?.trim();
      if (text) body[spec.name] = Number(text);
    }
    if (stream) body.stream = true;
    if (lora) body.lora = lora;
    return body;
  };
  const sides = compare ? [loraA, loraB] : [loraA];
  const requests: RunRequest[] = sides.map((lora) => ({ account: api.session.account, model: current, body: bodyFor(lora) }));

  const snippetText = current ? snippet(snippetKind, requests[Math.min(snippetSide, requests.length - 1)]!) : '';

  const update = (index: number, change: Partial<Pane> | ((p: Pane) => Partial<Pane>)) =>
    setPanes((prev) => prev.map((p, i) => (i === index ? { ...p, ...(typeof change === 'function' ? change(p) : change) } : p)));

  const runOne = async (index: number, body: Record<string, unknown>, controller: AbortController) => {
    const started = performance.now();
    let first: number | undefined;
    try {
      let usage: Usage | undefined;
      if (body.stream) {
        usage = await api.stream(current, body, controller.signal, (text) => {
          first ??= performance.now();
          update(index, (p) => ({ text: p.text + text, ttft: first! - started }));
        });
      } else {
        const answer = await api.run(current, body, controller.signal);
        first = performance.now();
        usage = answer.usage;
        update(index, { text: answer.response, ttft: first - started });
      }
      const end = performance.now();
      // Generation speed: output tokens over the time they took to arrive after the first.
      const span = (end - (body.stream && first !== undefined ? first : started)) / 1000;
      const tokensPerSecond = usage && span > 0 ? usage.completion_tokens / span : undefined;
      update(index, { state: 'done', usage, total: end - started, tokensPerSecond });
    } catch (error) {
      const aborted = controller.signal.aborted;
      update(index, { state: aborted ? 'stopped' : 'failed', error: aborted ? undefined : error, total: performance.now() - started });
    }
  };

  const run = (event: Event) => {
    event.preventDefault();
    let values = params;
    // Compare mode runs both sides with one seed, so only the adapter differs.
    if (compare && fields.some((f) => f.name === 'seed') && !params.seed?.trim()) {
      values = { ...params, seed: String(1 + Math.floor(Math.random() * 999_999)) };
      setParams(values);
    }
    const bodies = sides.map((lora) => bodyFor(lora, values));
    controllers.current = bodies.map(() => new AbortController());
    setPanes(sides.map((lora) => ({ label: lora ? `with ${loraName(lora)}` : compare ? 'base model' : 'Output', lora, text: '', state: 'running' })));
    bodies.forEach((body, i) => void runOne(i, body, controllers.current[i]!));
  };
  const stop = () => controllers.current.forEach((c) => c.abort());

  const fieldInput = (spec: FieldSpec) => (
    <FieldInput key={spec.name} spec={spec} value={params[spec.name] ?? ''} onChange={(v) => setParams({ ...params, [spec.name]: v })} />
  );

  const loraSelect = (id: string, value: string, onChange: (v: string) => void, label: string) => (
    <div class="field">
      <label for={id}>{label}</label>
      <select id={id} value={value} onChange={(e) => onChange(e.currentTarget.value)} disabled={!loraCapable}>
        <option value={NO_ADAPTER}>{loraCapable ? 'None (base model)' : 'This model takes no adapter'}</option>
        {finetunes.map(({ f, own: mine }) => (
          <option key={f.id} value={f.id}>
            {finetuneLabel(f, mine)}
          </option>
        ))}
      </select>
    </div>
  );

  if (models.loading) return <div class="page"><Spinner /></div>;
  if (models.error) return <div class="page"><ErrorMessage error={models.error} onRetry={models.reload} /></div>;

  return (
    <div class="page page-wide">
      <div class="page-head">
        <h1>Playground</h1>
        <p class="muted">Run a model with or without a finetune, watch the text arrive, and copy the request for your own code.</p>
      </div>
      <div class="playground">
        <form class="card controls" onSubmit={run} aria-label="Run settings">
          <div class="field">
            <label for="pg-model">Model</label>
            <select
              id="pg-model"
              value={current}
              onChange={(e) => {
                setModel(e.currentTarget.value);
                setLoraA(NO_ADAPTER);
                setLoraB(NO_ADAPTER);
                setParams({});
              }}
            >
              {choices.map((m) => (
                <option key={m.name} value={m.name}>
                  {m.name}
                  {runnable.data && !runnable.data.has(m.name) ? ' (no engine)' : ''}
                </option>
              ))}
            </select>
          </div>
          {loraSelect('pg-lora', loraA, setLoraA, compare ? 'Adapter A' : 'Finetune (optional)')}
          <label class="check">
            <input type="checkbox" name="compare" checked={compare} onChange={(e) => setCompare(e.currentTarget.checked)} disabled={!loraCapable} /> Compare
            side by side (same input and seed)
          </label>
          {compare && loraSelect('pg-lora-b', loraB, setLoraB, 'Adapter B')}

          <fieldset class="segmented">
            <legend>Input</legend>
            <label class={mode === 'prompt' ? 'on' : ''}>
              <input type="radio" name="mode" value="prompt" checked={mode === 'prompt'} onChange={() => setMode('prompt')} /> Prompt
            </label>
            <label class={mode === 'messages' ? 'on' : ''}>
              <input type="radio" name="mode" value="messages" checked={mode === 'messages'} onChange={() => setMode('messages')} /> Chat messages
            </label>
          </fieldset>
          {mode === 'prompt' ? (
            <>
              <div class="field">
                <label for="pg-prompt">Prompt</label>
                <textarea id="pg-prompt" rows={5} value={prompt} onInput={(e) => setPrompt(e.currentTarget.value)} />
              </div>
              {acceptsRaw && (
                <label class="check">
                  <input type="checkbox" name="raw" checked={raw} onChange={(e) => setRaw(e.currentTarget.checked)} /> <code>raw</code>: send the prompt
                  without the chat template
                </label>
              )}
            </>
          ) : (
            <div class="messages">
              {messages.map((m, i) => (
                <div class="message" key={i}>
                  <select
                    aria-label={`Role of message ${i + 1}`}
                    value={m.role}
                    onChange={(e) => setMessages(messages.map((x, j) => (j === i ? { ...x, role: e.currentTarget.value as Message['role'] } : x)))}
                  >
                    <option value="system">system</option>
                    <option value="user">user</option>
                    <option value="assistant">assistant</option>
                  </select>
                  <textarea
                    aria-label={`Content of message ${i + 1}`}
                    rows={2}
                    value={m.content}
                    onInput={(e) => setMessages(messages.map((x, j) => (j === i ? { ...x, content: e.currentTarget.value } : x)))}
                  />
                  <button
                    type="button"
                    class="btn btn-small btn-ghost"
                    aria-label={`Remove message ${i + 1}`}
                    onClick={() => setMessages(messages.filter((_, j) => j !== i))}
                    disabled={messages.length === 1}
                  >
                    ✕
                  </button>
                </div>
              ))}
              <button
                type="button"
                class="btn btn-small"
                onClick={() => setMessages([...messages, { role: messages.at(-1)?.role === 'user' ? 'assistant' : 'user', content: '' }])}
              >
                Add message
              </button>
            </div>
          )}

          <fieldset class="params">
            <legend>Parameters</legend>
            {schema.loading && <Spinner label="Loading the model's schema…" />}
            <ErrorMessage error={schema.error} />
            {schema.data && fields.length === 0 && <p class="muted small">This model's schema takes no sampling fields.</p>}
            <div class="param-grid">
              {fields.filter((spec) => PRIMARY_FIELDS.has(spec.name)).map(fieldInput)}
            </div>
            {fields.some((spec) => !PRIMARY_FIELDS.has(spec.name)) && (
              <details class="more-params" open={fields.some((spec) => !PRIMARY_FIELDS.has(spec.name) && params[spec.name])}>
                <summary>More sampling fields</summary>
                <div class="param-grid">{fields.filter((spec) => !PRIMARY_FIELDS.has(spec.name)).map(fieldInput)}</div>
              </details>
            )}
            <label class="check">
              <input type="checkbox" name="stream" checked={stream} onChange={(e) => setStream(e.currentTarget.checked)} /> Stream the answer as it is
              generated
            </label>
          </fieldset>

          <div class="run-buttons">
            <button type="submit" class="btn btn-primary" disabled={running || !current}>
              {running ? 'Running…' : compare ? 'Run both' : 'Run'}
            </button>
            <button type="button" class="btn btn-danger" onClick={stop} disabled={!running}>
              Stop
            </button>
          </div>
        </form>

        <div class="results">
          {panes.length === 0 ? (
            <div class="card output output-empty">
              <p class="muted">The answer appears here as it is generated.</p>
            </div>
          ) : (
            <div class={panes.length > 1 ? 'compare' : ''}>
              {panes.map((pane, i) => (
                <Output key={i} pane={pane} />
              ))}
            </div>
          )}
          <section class="card snippet" aria-labelledby="snippet-title">
            <div class="snippet-head">
              <h3 id="snippet-title">Copy as</h3>
              <div class="tabs tabs-small" role="tablist" aria-label="Client">
                {SNIPPET_KINDS.map(({ kind, label }) => (
                  <button key={kind} type="button" role="tab" class="tab" aria-selected={snippetKind === kind} onClick={() => setSnippetKind(kind)}>
                    {label}
                  </button>
                ))}
              </div>
              {compare && (
                <select aria-label="Request to copy" value={snippetSide} onChange={(e) => setSnippetSide(Number(e.currentTarget.value))}>
                  <option value={0}>Request A</option>
                  <option value={1}>Request B</option>
                </select>
              )}
              <span class="snippet-copy">
                <CopyButton text={snippetText} title="Copy the snippet" />
              </span>
            </div>
            <pre class="code" data-testid="snippet">
              {snippetText}
            </pre>
          </section>
        </div>
      </div>
    </div>
  );
}
