// The operator console (SPEC §14): sign in with an API key or JWT, then the pages below, each asking the public
// GraphQL API for one page of what it shows, kept live by subscriptions.
import { StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { storeCredential, storedCredential } from '../credentials.js';
import { closeSocket, request } from './api.js';
import { may } from './roles.js';
import { BatchesPage } from './batches.jsx';
import { MatricesPage } from './matrices.jsx';
import { ParticipantsPage } from './participants.jsx';
import { GrantsPage } from './grants.jsx';
import { AuditPage } from './audit.jsx';
import './console.css';

const VIEWER = '{ viewer { name roles participantId } }';

const PAGES = [
  { id: 'batches', title: 'Batches', Page: BatchesPage },
  { id: 'matrices', title: 'Matrices', Page: MatricesPage },
  { id: 'participants', title: 'Participants', Page: ParticipantsPage },
  { id: 'grants', title: 'Grants', Page: GrantsPage },
  { id: 'audit', title: 'Audit log', Page: AuditPage, allowed: (viewer) => may(viewer, 'readAuditLog') },
];

function currentRoute() {
  const [page, ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  return { page: page || 'batches', arg: rest.join('/') || null };
}

function SignIn({ onSignedIn, notice }) {
  const [typed, setTyped] = useState('');
  const [refusal, setRefusal] = useState(notice);
  const [busy, setBusy] = useState(false);
  async function submit(event) {
    event.preventDefault();
    setBusy(true);
    setRefusal(null);
    try {
      const data = await request(VIEWER, {}, typed.trim());
      storeCredential(typed.trim());
      onSignedIn(data.viewer);
    } catch (err) {
      setRefusal(err.code === 'UNAUTHENTICATED'
        ? `Sign-in refused: this key or token is not accepted (${err.message}).`
        : `Sign-in failed: ${err.message} (${err.code}).`);
    } finally {
      setBusy(false);
    }
  }
  return (
    <main className="signin-page">
      <h1>settlegraph console</h1>
      <form onSubmit={submit}>
        <label>API key or token
          <input type="password" name="credential" autoComplete="off" autoFocus value={typed}
                 onChange={(e) => setTyped(e.target.value)} />
        </label>
        <button type="submit" disabled={busy || !typed.trim()}>Sign in</button>
        <p className="hint">Kept for this browser tab only. <a href="/graphql">GraphiQL</a></p>
        {refusal && <p className="problems" role="alert">{refusal}</p>}
      </form>
    </main>
  );
}

function App() {
  const [viewer, setViewer] = useState(null);
  const [checking, setChecking] = useState(true);
  const [notice, setNotice] = useState(null);
  const [route, setRoute] = useState(currentRoute());

  useEffect(() => {
    const onHash = () => setRoute(currentRoute());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);

  useEffect(() => {
    // With a key kept from earlier in this tab, carry on; without one, a server in its zero set-up mode (no
    // credentials configured, loopback only) answers anyway, as ADMIN, and no sign-in is needed.
    const kept = storedCredential();
    request(VIEWER, {}, kept)
      .then((data) => setViewer(data.viewer))
      .catch((err) => {
        storeCredential('');
        if (kept) setNotice(`Signed out: ${err.message}`);
      })
      .finally(() => setChecking(false));
  }, []);

  function signOut() {
    storeCredential('');
    closeSocket();
    setViewer(null);
    setNotice(null);
  }

  if (checking) return <p className="loading">Loading…</p>;
  if (!viewer) return <SignIn onSignedIn={(v) => { setViewer(v); setNotice(null); }} notice={notice} />;

  const pages = PAGES.filter((p) => !p.allowed || p.allowed(viewer));
  const active = pages.find((p) => p.id === route.page) || pages[0];
  return (
    <>
      <header className="topbar">
        <strong>settlegraph</strong>
        <nav>
          {pages.map((p) => (
            <a key={p.id} href={`#/${p.id}`} className={p === active ? 'active' : ''}>{p.title}</a>
          ))}
          <a href="/graphql">GraphiQL</a>
        </nav>
        <span className="who" data-testid="who">
          {viewer.name} · {viewer.roles.join(', ')}{viewer.participantId ? ` · ${viewer.participantId}` : ''}
        </span>
        <button type="button" onClick={signOut}>Sign out</button>
      </header>
      <main className="content">
        <active.Page key={active.id} viewer={viewer} arg={route.page === active.id ? route.arg : null} />
      </main>
    </>
  );
}

createRoot(document.getElementById('root')).render(<StrictMode><App /></StrictMode>);
