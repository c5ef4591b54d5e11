import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, type Api, type Finetune } from '../api';
import { ADAPTER_FILES, droppedFiles, pickAdapterFiles, type AdapterFileName } from '../adapter-files';
import { ConfirmDialog, CopyButton, ErrorMessage, formatBytes, formatDate, Notice, Spinner, StatusBadge, useLoad } from '../components';

type Sort = 'newest' | 'oldest' | 'name' | 'status';

function sortFinetunes(list: Finetune[], sort: Sort): Finetune[] {
  const sorted = [...list];
  if (sort === 'name') sorted.sort((a, b) => a.name.localeCompare(b.name));
  else if (sort === 'status') sorted.sort((a, b) => a.status.localeCompare(b.status) || a.name.localeCompare(b.name));
  else sorted.sort((a, b) => (sort === 'newest' ? -1 : 1) * a.created_at.localeCompare(b.created_at));
  return sorted;
}

function matches(f: Finetune, search: string): boolean {
  return search === '' || `${f.name} ${f.model} ${f.description} ${f.id}`.toLowerCase().includes(search.toLowerCase());
}

function CreateForm({ api, onCreated }: { api: Api; onCreated: (f: Finetune) => void }) {
  const models = useLoad(() => api.models(), []);
  const runnable = useLoad(() => api.runnableModels().catch(() => new Set<string>()), []);
  // LoRA bases; those an engine serves here first, so the default is one that can run.
  const loraModels = (models.data ?? [])
    .filter((m) => m.properties.some((p) => p.property_id === 'lora' && p.value === 'true'))
    .sort((a, b) => Number(runnable.data?.has(b.name) ?? false) - Number(runnable.data?.has(a.name) ?? false));
  const [model, setModel] = useState('');
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [isPublic, setPublic] = useState(false);
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const chosen = model || loraModels[0]?.name || '';
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const body = { model: chosen, name: name.trim(), description: description.trim() || undefined, public: isPublic };
      onCreated((await api.call<Finetune>('POST', `${api.accountPath}/ai/finetunes`, body)).result);
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card form-grid" onSubmit={submit} aria-labelledby="create-title">
      <h2 id="create-title" class="span-all">New finetune</h2>
      <label class="field">
        <span>Base model</span>
        <select value={chosen} onChange={(e) => setModel(e.currentTarget.value)} required>
          {loraModels.map((m) => (
            <option key={m.name} value={m.name}>
              {m.name}
            </option>
          ))}
        </select>
      </label>
      <div class="field">
        <label for="create-name">Name</label>
        <input
          id="create-name"
          value={name}
          onInput={(e) => setName(e.currentTarget.value)}
          placeholder="support-bot"
          spellcheck={false}
          required
          maxLength={64}
          aria-describedby="create-name-hint"
        />
        <small id="create-name-hint" class="muted">
          Letters, digits, “-”, “_” and “.”; unique in the account.
        </small>
      </div>
      <label class="field span-all">
        <span>Description (optional)</span>
        <input value={description} onInput={(e) => setDescription(e.currentTarget.value)} maxLength={1024} />
      </label>
      <label class="check span-all">
        <input type="checkbox" checked={isPublic} onChange={(e) => setPublic(e.currentTarget.checked)} /> Public: every account can use it
      </label>
      <div class="span-all">
        <ErrorMessage error={error ?? models.error} />
        <button type="submit" class="btn btn-primary" disabled={busy || !chosen}>
          {busy ? 'Creating…' : 'Create finetune'}
        </button>
      </div>
    </form>
  );
}

function DeleteButton({ api, finetune, onDeleted }: { api: Api; finetune: Finetune; onDeleted: () => void }) {
  const [open, setOpen] = useState(false);
  const [error, setError] = useState<unknown>();
  const confirm = async () => {
    setOpen(false);
    try {
      await api.call('DELETE', `${api.accountPath}/ai/finetunes/${finetune.id}`);
      onDeleted();
    } catch (caught) {
      setError(caught);
    }
  };
  return (
    <>
      <button type="button" class="btn btn-small btn-danger-ghost" onClick={() => setOpen(true)} aria-label={`Delete ${finetune.name}`}>
        Delete
      </button>
      <ConfirmDialog open={open} title={`Delete “${finetune.name}”?`} confirmLabel="Delete" onConfirm={confirm} onCancel={() => setOpen(false)}>
        <p>The finetune and its adapter files are removed. Requests naming it will fail. This cannot be undone.</p>
      </ConfirmDialog>
      {error !== undefined && <ErrorMessage error={error} />}
    </>
  );
}

function FinetuneTable({ list, api, own, onChange }: { list: Finetune[]; api: Api; own: boolean; onChange: () => void }) {
  if (list.length === 0) return <p class="empty muted">{own ? 'No finetunes yet. Create one above.' : 'No public finetunes match.'}</p>;
  return (
    <div class="table-wrap">
      <table class="table">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col" class="hide-narrow">Base model</th>
            <th scope="col">Status</th>
            <th scope="col" class="hide-narrow">Created</th>
            <th scope="col">
              <span class="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {list.map((f) => (
            <tr key={f.id}>
              <td>
                <a href={`#/finetunes/${f.id}`}>{f.name}</a>
                {f.public && own && <span class="badge badge-muted">public</span>}
                {f.description && <div class="muted small clamp">{f.description}</div>}
                <code class="small show-narrow">{f.model}</code>
              </td>
              <td class="hide-narrow">
                <code class="small">{f.model}</code>
              </td>
              <td>
                <StatusBadge status={f.status} />
              </td>
              <td class="hide-narrow nowrap">{formatDate(f.created_at)}</td>
              <td>
                <div class="actions">
                  <CopyButton text={f.id} label="Copy id" title={`Copy the id of ${f.name}`} />
                  {own && <DeleteButton api={api} finetune={f} onDeleted={onChange} />}
                </div>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function FinetunesPage({ api }: { api: Api }) {
  const [tab, setTab] = useState<'own' | 'public'>('own');
  const [search, setSearch] = useState('');
  const [sort, setSort] = useState<Sort>('newest');
  const [publicOrder, setPublicOrder] = useState('-created_at');
  const own = useLoad(() => api.finetunes(), []);
  const pub = useLoad(() => (tab === 'public' ? api.publicFinetunes(publicOrder) : Promise.resolve([])), [tab, publicOrder]);
  const current = tab === 'own' ? own : pub;
  const list = tab === 'own' ? sortFinetunes((own.data ?? []).filter((f) => matches(f, search)), sort) : (pub.data ?? []).filter((f) => matches(f, search));
  return (
    <div class="page">
      <div class="page-head">
        <h1>Finetunes</h1>
        <p class="muted">LoRA adapters on the catalog’s base models. Create one, then upload its adapter folder.</p>
      </div>
      <CreateForm api={api} onCreated={(f) => (location.hash = `#/finetunes/${f.id}`)} />
      <div class="tabs" role="tablist" aria-label="Finetune lists">
        <button type="button" role="tab" aria-selected={tab === 'own'} class="tab" onClick={() => setTab('own')}>
          Yours{own.data ? ` (${own.data.length})` : ''}
        </button>
        <button type="button" role="tab" aria-selected={tab === 'public'} class="tab" onClick={() => setTab('public')}>
          Public
        </button>
      </div>
      <div class="toolbar">
        <label class="field field-inline grow">
          <span class="sr-only">Search finetunes</span>
          <input type="search" placeholder="Search by name, model, description or id" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
        </label>
        <label class="field field-inline">
          <span>Sort</span>
          {tab === 'own' ? (
            <select value={sort} onChange={(e) => setSort(e.currentTarget.value as Sort)}>
              <option value="newest">Newest first</option>
              <option value="oldest">Oldest first</option>
              <option value="name">Name</option>
              <option value="status">Status</option>
            </select>
          ) : (
            <select value={publicOrder} onChange={(e) => setPublicOrder(e.currentTarget.value)}>
              <option value="-created_at">Newest first</option>
              <option value="created_at">Oldest first</option>
              <option value="-modified_at">Recently modified</option>
              <option value="name">Name</option>
            </select>
          )}
        </label>
      </div>
      {current.loading && <Spinner />}
      <ErrorMessage error={current.error} onRetry={current.reload} />
      {current.data && <FinetuneTable list={list} api={api} own={tab === 'own'} onChange={own.reload} />}
    </div>
  );
}

interface FileState {
  file?: File;
  sent: number;
  state: 'missing' | 'chosen' | 'uploading' | 'done' | 'failed' | 'skipped';
  error?: unknown;
  warnings?: string[];
}

const EMPTY_FILES = (): Record<AdapterFileName, FileState> => ({
  'adapter_config.json': { sent: 0, state: 'missing' },
  'adapter_model.safetensors': { sent: 0, state: 'missing' },
});

function Uploader({ api, finetune, onUploaded }: { api: Api; finetune: Finetune; onUploaded: () => void }) {
  const [files, setFiles] = useState(EMPTY_FILES);
  const [dragging, setDragging] = useState(false);
  const [busy, setBusy] = useState(false);
  const [note, setNote] = useState<string>();
  const abort = useRef<() => void>();
  useEffect(() => () => abort.current?.(), []);

  const choose = (chosen: Iterable<File>) => {
    const picked = pickAdapterFiles(chosen);
    const names = Object.keys(picked);
    if (names.length === 0) {
      setNote(`Nothing to upload: choose a folder holding ${ADAPTER_FILES.join(' and ')}, or those files.`);
      return;
    }
    setNote(undefined);
    setFiles((prev) => {
      const next = { ...prev };
      for (const name of ADAPTER_FILES) {
        const file = picked[name];
        if (file) next[name] = { file, sent: 0, state: 'chosen' };
      }
      return next;
    });
  };

  const upload = async () => {
    setBusy(true);
    let failed = false;
    for (const name of ADAPTER_FILES) {
      const entry = files[name];
      if (!entry.file || entry.state === 'done') continue;
      if (failed) {
        setFiles((prev) => ({ ...prev, [name]: { ...prev[name], state: 'skipped' } }));
        continue;
      }
      const file = entry.file;
      setFiles((prev) => ({ ...prev, [name]: { ...prev[name], sent: 0, state: 'uploading', error: undefined } }));
      const request = api.upload(finetune.id, name, file, (sent) => setFiles((prev) => ({ ...prev, [name]: { ...prev[name], sent } })));
      abort.current = request.abort;
      try {
        const messages = await request.done;
        setFiles((prev) => ({ ...prev, [name]: { ...prev[name], sent: file.size, state: 'done', warnings: messages.map((m) => m.message) } }));
      } catch (error) {
        failed = true;
        setFiles((prev) => ({ ...prev, [name]: { ...prev[name], state: 'failed', error } }));
      }
    }
    abort.current = undefined;
    setBusy(false);
    onUploaded();
  };

  const ready = ADAPTER_FILES.some((n) => files[n].file && files[n].state !== 'done');
  return (
    <section class="card" aria-labelledby="upload-title">
      <h2 id="upload-title">Adapter files</h2>
      <p class="muted">
        Drop the adapter folder (or its <code>adapter_config.json</code> and <code>adapter_model.safetensors</code>) here. Each file is checked by the
        service as it arrives; the finetune becomes ready once both agree with each other and the base model.
      </p>
      <div
        class={`dropzone${dragging ? ' dropzone-active' : ''}`}
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={async (e) => {
          e.preventDefault();
          setDragging(false);
          if (e.dataTransfer) choose(await droppedFiles(e.dataTransfer));
        }}
      >
        <span class="dropzone-title">Drop an adapter folder or its two files</span>
        <span class="muted">or</span>
        <div class="dropzone-buttons">
          <label class="btn btn-small file-button">
            Choose folder…
            <input type="file" class="sr-only" aria-label="Choose adapter folder" {...{ webkitdirectory: true }} onChange={(e) => choose(e.currentTarget.files ?? [])} />
          </label>
          <label class="btn btn-small file-button">
            Choose files…
            <input type="file" class="sr-only" aria-label="Choose adapter files" multiple accept=".json,.safetensors" onChange={(e) => choose(e.currentTarget.files ?? [])} />
          </label>
        </div>
      </div>
      {note && <Notice kind="warning">{note}</Notice>}
      <ul class="files" aria-label="Files to upload">
        {ADAPTER_FILES.map((name) => {
          const f = files[name];
          const total = f.file?.size ?? 0;
          return (
            <li key={name} class={`file file-${f.state}`} data-file={name}>
              <div class="file-row">
                <code>{name}</code>
                <span class="muted small">{f.file ? formatBytes(total) : 'not chosen'}</span>
                <span class="file-state">
                  {{ missing: '', chosen: 'ready to upload', uploading: 'uploading…', done: 'uploaded', failed: 'rejected', skipped: 'not sent' }[f.state]}
                </span>
              </div>
              {(f.state === 'uploading' || f.state === 'done') && (
                <progress max={total || 1} value={f.sent} aria-label={`${name} upload progress`}>
                  {Math.round((f.sent / (total || 1)) * 100)}%
                </progress>
              )}
              {f.error !== undefined && (
                <div class="file-error" role="alert">
                  {f.error instanceof ApiError ? (
                    <>
                      <strong>{f.error.message}</strong>
                      {f.error.code !== undefined && <span class="muted small"> (code {f.error.code})</span>}
                    </>
                  ) : (
                    <ErrorMessage error={f.error} />
                  )}
                </div>
              )}
              {f.warnings?.map((w) => (
                <Notice key={w} kind="warning">
                  {w}
                </Notice>
              ))}
            </li>
          );
        })}
      </ul>
      <button type="button" class="btn btn-primary" onClick={upload} disabled={busy || !ready}>
        {busy ? 'Uploading…' : 'Upload'}
      </button>
    </section>
  );
}

export function FinetuneDetail({ api, idOrName }: { api: Api; idOrName: string }) {
  const finetune = useLoad(() => api.finetune(idOrName), [idOrName]);
  // Another account's public finetune can be seen here, but only its owner can change it.
  const own = useLoad(() => api.finetunes(), []);
  const f = finetune.data;
  const mine = f !== undefined && (own.data?.some((x) => x.id === f.id) ?? false);
  return (
    <div class="page">
      <nav class="breadcrumb" aria-label="Breadcrumb">
        <a href="#/finetunes">Finetunes</a> <span aria-hidden="true">/</span> <span>{f?.name ?? idOrName}</span>
      </nav>
      {finetune.loading && !f && <Spinner />}
      <ErrorMessage error={finetune.error} onRetry={finetune.reload} />
      {f && (
        <>
          <div class="page-head page-head-row">
            <div>
              <h1>
                {f.name} <StatusBadge status={f.status} />
              </h1>
              {f.description && <p class="muted">{f.description}</p>}
            </div>
            <div class="actions">
              {f.status === 'ready' && (
                <a class="btn btn-primary" href={`#/playground/${f.id}`}>
                  Try in Playground
                </a>
              )}
              {mine && <DeleteButton api={api} finetune={f} onDeleted={() => (location.hash = '#/finetunes')} />}
            </div>
          </div>
          <dl class="card facts facts-wide">
            <div>
              <dt>Id</dt>
              <dd>
                <code>{f.id}</code> <CopyButton text={f.id} label="Copy id" title="Copy the finetune id" />
              </dd>
            </div>
            <div>
              <dt>Base model</dt>
              <dd>
                <code>{f.model}</code>
              </dd>
            </div>
            <div>
              <dt>Visibility</dt>
              <dd>{f.public ? 'public' : 'private'}</dd>
            </div>
            <div>
              <dt>Created</dt>
              <dd>{formatDate(f.created_at)}</dd>
            </div>
            <div>
              <dt>Modified</dt>
              <dd>{formatDate(f.modified_at)}</dd>
            </div>
          </dl>
          {f.status === 'ready' ? (
            <Notice kind="success">Both adapter files are in place and checked: the finetune is ready to use as <code>lora</code>.</Notice>
          ) : !mine ? (
            own.data && <Notice>This is another account’s public finetune; its files are not uploaded yet.</Notice>
          ) : (
            <Uploader api={api} finetune={f} onUploaded={finetune.reload} />
          )}
        </>
      )}
    </div>
  );
}
