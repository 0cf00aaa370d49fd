// The caller's API key or JWT, shared by GraphiQL and the console (same origin). Kept in sessionStorage: it
// lives as long as the browser tab, never in a URL, never in localStorage.
const STORAGE_KEY = 'settlegraph.credential';

export function storedCredential() {
  return sessionStorage.getItem(STORAGE_KEY) || '';
}

export function storeCredential(credential) {
  if (credential) sessionStorage.setItem(STORAGE_KEY, credential);
  else sessionStorage.removeItem(STORAGE_KEY);
}

/** The Authorization header value for a key or token as typed (a pasted "Bearer ..." is accepted as is). */
export function authorization(credential) {
  const trimmed = (credential || '').trim();
  if (!trimmed) return '';
  return /^bearer\s/i.test(trimmed) ? trimmed : `Bearer ${trimmed}`;
}

export function websocketUrl() {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`;
}
