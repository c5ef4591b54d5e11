import type { Session } from './api';

const KEY = 'lora-hub.session';
const ACCOUNT_ID = /^[0-9a-f]{32}$/;

/** The signed-in session lives in sessionStorage only: gone with the tab, never in a URL query or a log. */
export function loadSession(): Session | undefined {
  try {
    const stored = JSON.parse(sessionStorage.getItem(KEY) ?? 'null') as Session | null;
    return stored && ACCOUNT_ID.test(stored.account) && stored.token ? stored : undefined;
  } catch {
    return undefined;
  }
}

export function saveSession(session: Session): void {
  sessionStorage.setItem(KEY, JSON.stringify(session));
}

export function clearSession(): void {
  sessionStorage.removeItem(KEY);
}

export function validAccountId(account: string): boolean {
  return ACCOUNT_ID.test(account);
}

/**
 * The first-run banner's link carries `#account=…&token=…` (a fragment never reaches the server). Takes it, and
 * removes it from the address bar and the history entry so it is not left on screen or in the history.
 */
export function takeFragmentSession(): Session | undefined {
  if (!location.hash.startsWith('#account=') && !location.hash.includes('&token=')) return undefined;
  const params = new URLSearchParams(location.hash.slice(1));
  const account = params.get('account') ?? '';
  const token = params.get('token') ?? '';
  history.replaceState(null, '', `${location.pathname}${location.search}#/playground`);
  return validAccountId(account) && token ? { account, token } : undefined;
}
