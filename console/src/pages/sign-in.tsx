import { useState } from 'preact/hooks';
import { Api, type Session } from '../api';
import { ErrorMessage } from '../components';
import { validAccountId } from '../session';

/** Checks the account id and token with one API call before keeping them. */
export function SignIn({ onSignIn }: { onSignIn: (session: Session) => void }) {
  const [account, setAccount] = useState('');
  const [token, setToken] = useState('');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    const session = { account: account.trim(), token: token.trim() };
    if (!validAccountId(session.account)) {
      setError(new Error('The account id is 32 lowercase hexadecimal characters.'));
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await new Api(session).finetunes();
      onSignIn(session);
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin" id="main">
      <form class="card signin-card" onSubmit={submit} aria-labelledby="signin-title" noValidate>
        <div class="brand brand-large">
          <span class="brand-mark" aria-hidden="true">◆</span> lora-hub
        </div>
        <h1 id="signin-title">Sign in to the console</h1>
        <p class="muted">Use an account id and one of its API tokens. They are kept in this browser tab only.</p>
        <label class="field">
          <span>Account id</span>
          <input name="account" autoComplete="username" spellcheck={false} value={account} onInput={(e) => setAccount(e.currentTarget.value)} required />
        </label>
        <label class="field">
          <span>API token</span>
          <input name="token" type="password" autoComplete="current-password" value={token} onInput={(e) => setToken(e.currentTarget.value)} required />
        </label>
        {error !== undefined && (error instanceof Error && !('status' in error) ? <div class="alert alert-error" role="alert">{error.message}</div> : <ErrorMessage error={error} />)}
        <button type="submit" class="btn btn-primary btn-block" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <p class="muted small">
          On a first start, <code>npm start</code> prints a console link that signs you in directly.
        </p>
      </form>
    </main>
  );
}
