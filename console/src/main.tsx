import { Component, render, type ComponentChildren } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { Api, type Session } from './api';
import { ErrorMessage } from './components';
import { FinetuneDetail, FinetunesPage } from './pages/finetunes';
import { ModelsPage } from './pages/models';
import { PlaygroundPage } from './pages/playground';
import { SignIn } from './pages/sign-in';
import { UsagePage } from './pages/usage';
import { clearSession, loadSession, saveSession, takeFragmentSession } from './session';
import './styles.css';

const PAGES = [
  { path: 'playground', label: 'Playground' },
  { path: 'finetunes', label: 'Finetunes' },
  { path: 'models', label: 'Models' },
  { path: 'usage', label: 'Usage' },
] as const;

function currentRoute(): string[] {
  const route = location.hash.replace(/^#\/?/, '');
  return route === '' ? ['playground'] : route.split('/').map(decodeURIComponent);
}

/** A rendering failure shows a message and a way back instead of a blank page. */
class Boundary extends Component<{ children: ComponentChildren }, { error?: unknown }> {
  override state: { error?: unknown } = {};
  override componentDidCatch(error: unknown) {
    this.setState({ error });
  }
  render() {
    if (this.state.error !== undefined) {
      return (
        <div class="page">
          <ErrorMessage error={this.state.error} />
          <button type="button" class="btn" onClick={() => this.setState({ error: undefined })}>
            Back
          </button>
        </div>
      );
    }
    return this.props.children;
  }
}

function App() {
  const [session, setSession] = useState<Session | undefined>(() => {
    const fromLink = takeFragmentSession();
    if (fromLink) saveSession(fromLink);
    return fromLink ?? loadSession();
  });
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const onHash = () => setRoute(currentRoute());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  const api = useMemo(() => (session ? new Api(session) : undefined), [session]);

  if (!session || !api) {
    return (
      <SignIn
        onSignIn={(next) => {
          saveSession(next);
          setSession(next);
        }}
      />
    );
  }
  const signOut = () => {
    clearSession();
    setSession(undefined);
  };
  const [page, ...rest] = route;
  let content;
  if (page === 'finetunes' && rest[0]) content = <FinetuneDetail api={api} idOrName={rest[0]} />;
  else if (page === 'finetunes') content = <FinetunesPage api={api} />;
  else if (page === 'models') content = <ModelsPage api={api} />;
  else if (page === 'usage') content = <UsagePage api={api} />;
  else content = <PlaygroundPage api={api} finetuneId={page === "playground" ? rest[0] : undefined} />;

  return (
    <>
      <a class="skip-link" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>
        Skip to content
      </a>
      <header class="topbar">
        <div class="brand">
          <span class="brand-mark" aria-hidden="true">◆</span> lora-hub
        </div>
        <nav aria-label="Main">
          {PAGES.map((p) => (
            <a key={p.path} href={`#/${p.path}`} class="nav-link" aria-current={page === p.path || (p.path === 'playground' && !PAGES.some((q) => q.path === page)) ? 'page' : undefined}>
              {p.label}
            </a>
          ))}
        </nav>
        <div class="account">
          <span class="account-id" title={`Account ${session.account}`}>
            {session.account.slice(0, 8)}…
          </span>
          <button type="button" class="btn btn-small btn-ghost" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Boundary>{content}</Boundary>
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
