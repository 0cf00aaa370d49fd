// GraphiQL served by settlegraph itself (no CDN): queries and mutations over HTTP, subscriptions over
// graphql-transport-ws. The key or token is typed into the sign-in bar (kept for the tab's session) or into
// the headers editor; it is sent as the Authorization header, and as the connection_init payload over WebSocket.
import { StrictMode, useMemo, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import 'graphiql/style.css';
import { getOperationAST, parse } from 'graphql';
import { createClient } from 'graphql-ws';
import { authorization, storeCredential, storedCredential, websocketUrl } from './credentials.js';
import './graphiql.css';

const DEFAULT_QUERY = `# Sign in above with an API key or a JWT, then run this (Ctrl-Enter).
{
  viewer { name roles }
  settlementModels { name batchIntervalSeconds currencies }
  batches(first: 5) { totalCount edges { node { name status transferCount } } }
}

# A subscription streams here until you stop it:
# subscription { batchStatusChanged { batch { name } from to actor } }
`;

function isSubscription(params) {
  try {
    return getOperationAST(parse(params.query), params.operationName)?.operation === 'subscription';
  } catch {
    return false; // a document that does not parse goes to the server, which says why
  }
}

// One WebSocket per credential: a new sign-in opens a new connection whose connection_init carries it.
let socket = null;
let socketAuthorization = null;

function socketFor(header) {
  if (socket && socketAuthorization === header) return socket;
  socket?.dispose();
  socketAuthorization = header;
  socket = createClient({
    url: websocketUrl(),
    lazy: true,
    retryAttempts: 0,
    connectionParams: header ? { Authorization: header } : {},
  });
  return socket;
}

function headerOf(headers, name) {
  const found = Object.keys(headers || {}).find((h) => h.toLowerCase() === name);
  return found ? headers[found] : undefined;
}

function fetcherFor(credential) {
  return async (params, options) => {
    const headers = { ...(options?.headers || {}) };
    const header = headerOf(headers, 'authorization') || authorization(credential);
    if (isSubscription(params)) {
      return socketFor(header).iterate({
        query: params.query, variables: params.variables, operationName: params.operationName,
      });
    }
    for (const name of Object.keys(headers)) if (name.toLowerCase() === 'authorization') delete headers[name];
    const response = await fetch('/graphql', {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json', Accept: 'application/json', ...headers,
        ...(header ? { Authorization: header } : {}),
      },
      body: JSON.stringify(params),
    });
    return response.json();
  };
}

function SignInBar({ credential, onChange }) {
  const [typed, setTyped] = useState('');
  const [status, setStatus] = useState(credential ? 'signed in (key kept for this tab only)' : '');
  async function signIn(event) {
    event.preventDefault();
    const response = await fetch('/graphql', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: authorization(typed) },
      body: JSON.stringify({ query: '{ viewer { name roles } }' }),
    });
    const body = await response.json();
    if (body.errors?.length) {
      setStatus(`refused: ${body.errors[0].message} (${body.errors[0].extensions?.code ?? 'ERROR'})`);
      return;
    }
    storeCredential(typed.trim());
    onChange(typed.trim());
    setTyped('');
    setStatus(`signed in as ${body.data.viewer.name} (${body.data.viewer.roles.join(', ')})`);
  }
  function signOut() {
    storeCredential('');
    onChange('');
    setStatus('signed out');
  }
  return (
    <form className="signin" onSubmit={signIn}>
      <strong>settlegraph</strong>
      <label>
        API key or token{' '}
        <input type="password" name="credential" autoComplete="off" value={typed}
               onChange={(e) => setTyped(e.target.value)} />
      </label>
      <button type="submit" disabled={!typed.trim()}>Sign in</button>
      {credential && <button type="button" onClick={signOut}>Sign out</button>}
      <span className="signin-status" role="status">{status}</span>
      <a href="/console">Console</a>
    </form>
  );
}

function Page() {
  const [credential, setCredential] = useState(storedCredential());
  // A new fetcher makes GraphiQL fetch the schema again, now as the signed-in caller.
  const fetcher = useMemo(() => fetcherFor(credential), [credential]);
  return (
    <div className="page">
      <SignInBar credential={credential} onChange={setCredential} />
      <div className="ide">
        <GraphiQL fetcher={fetcher} defaultQuery={DEFAULT_QUERY} shouldPersistHeaders={false} />
      </div>
    </div>
  );
}

createRoot(document.getElementById('root')).render(<StrictMode><Page /></StrictMode>);
