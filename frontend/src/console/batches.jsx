// The batch board: filtered pages of batches with counts per status, live by batchStatusChanged; a batch's
// accounts, history and transfers; close / dispute / resolve with a reason; a static matrix from selected batches.
import { useEffect, useRef, useState } from 'react';
import { request, subscribe, useConnection } from './api.js';
import { may } from './roles.js';
import { Amount, ErrorLine, Problems, useAction, useThrottled, utcInput, when } from './ui.jsx';

const STATUSES = ['OPEN', 'CLOSED', 'IN_DISPUTE', 'AWAITING_SETTLEMENT', 'SETTLED'];
const PAGE = 25;

// The page of batches and the counts per status travel as two requests at once: the rows (what an operator acts
// on) need not wait for five counts over a day of 86,400 batches.
const BOARD = `query Board($filter: BatchFilter, $first: Int!, $after: String) {
  page: batches(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id name status currency windowStart windowEnd transferCount model { name } } }
  }
}`;

const COUNTS = `query Counts($open: BatchFilter, $closed: BatchFilter, $inDispute: BatchFilter, $awaiting: BatchFilter,
    $settled: BatchFilter) {
  OPEN: batches(filter: $open, first: 0) { totalCount }
  CLOSED: batches(filter: $closed, first: 0) { totalCount }
  IN_DISPUTE: batches(filter: $inDispute, first: 0) { totalCount }
  AWAITING_SETTLEMENT: batches(filter: $awaiting, first: 0) { totalCount }
  SETTLED: batches(filter: $settled, first: 0) { totalCount }
}`;

const MODELS = '{ settlementModels { name currencies batchIntervalSeconds segmentBy } }';

const LIVE = `subscription Live($model: String) { batchStatusChanged(model: $model) { batch { id } from to } }`;

const DETAIL = `query Detail($id: ID!, $after: String) {
  batch(ref: { id: $id }) {
    id name status currency sequence windowStart windowEnd transferCount model { name }
    segment { key value }
    ownerMatrix { id status }
    accounts { participantId currency debit credit net }
    history { from to at actor reason matrix { id } }
    transfers(first: 20, after: $after) {
      totalCount pageInfo { hasNextPage endCursor }
      edges { node { transferId payerId payeeId amount currency committedAt } }
    }
  }
}`;

const LIFECYCLE = {
  close: 'closeBatch', dispute: 'disputeBatch', resolve: 'resolveBatchDispute',
};
const ALLOWED_FROM = { close: ['OPEN'], dispute: ['OPEN', 'CLOSED'], resolve: ['IN_DISPUTE'] };

function lifecycleMutation(action) {
  return `mutation Act($ref: BatchRef!, $reason: String) {
    result: ${LIFECYCLE[action]}(ref: $ref, reason: $reason) { batch { id name status } userErrors { code message field } }
  }`;
}

const STATIC_MATRIX = `mutation Static($ids: [ID!]!) {
  result: createStaticMatrix(batchIds: $ids) { matrix { id } skipped { reason batch { name } } userErrors { code message } }
}`;

function filterOf(form) {
  return {
    model: form.model || null,
    currencies: form.currency ? form.currency.split(',').map((c) => c.trim().toUpperCase()).filter(Boolean) : null,
    statuses: form.status ? [form.status] : null,
    windowFrom: utcInput(form.windowFrom),
    windowTo: utcInput(form.windowTo),
  };
}

export function BatchesPage({ viewer, arg }) {
  return arg ? <BatchDetail id={arg} viewer={viewer} /> : <Board viewer={viewer} />;
}

function Board({ viewer }) {
  const [models, setModels] = useState([]);
  const [form, setForm] = useState({ model: '', currency: '', status: '', windowFrom: '', windowTo: '' });
  const [applied, setApplied] = useState(form);
  const [cursors, setCursors] = useState([null]); // the cursor before each page shown so far
  const [board, setBoard] = useState(null);
  const [counts, setCounts] = useState(null);
  const loads = useRef(0);
  const [error, setError] = useState(null);
  const [selected, setSelected] = useState(new Set());
  const live = useConnection();
  const staticMatrix = useAction();

  const after = cursors[cursors.length - 1];

  async function load() {
    const base = filterOf(applied);
    const per = (status) => ({ ...base, statuses: [status] });
    const asked = ++loads.current; // an answer to an older filter or page arriving late is dropped
    const rows = request(BOARD, { filter: base, first: PAGE, after });
    const totals = request(COUNTS, { open: per('OPEN'), closed: per('CLOSED'), inDispute: per('IN_DISPUTE'),
                                     awaiting: per('AWAITING_SETTLEMENT'), settled: per('SETTLED') });
    try {
      const data = await rows;
      if (asked !== loads.current) return;
      setBoard(data);
      setError(null);
      const counted = await totals;
      if (asked === loads.current) setCounts(counted);
    } catch (err) {
      if (asked === loads.current) setError(err);
    }
  }
  const refresh = useThrottled(load, 250);

  useEffect(() => { request(MODELS).then((d) => setModels(d.settlementModels)).catch(setError); }, []);
  useEffect(() => { load(); }, [applied, after]);
  useEffect(() => {
    if (board) document.body.dataset.boardReady = 'true'; // the first page is on screen and usable
    if (counts) document.body.dataset.countsReady = 'true';
  }, [board, counts]);
  useEffect(() => subscribe(LIVE, { model: applied.model || null }, refresh, setError), [applied.model]);

  function apply(event) {
    event.preventDefault();
    setCursors([null]);
    setApplied(form);
  }

  function toggle(id) {
    const next = new Set(selected);
    next.has(id) ? next.delete(id) : next.add(id);
    setSelected(next);
  }

  async function createStatic() {
    const payload = await staticMatrix.run(async () => (await request(STATIC_MATRIX, { ids: [...selected] })).result);
    if (payload?.matrix) location.hash = `#/matrices/${payload.matrix.id}`;
  }

  const page = board?.page;
  return (
    <section>
      <h2>Batches <span className={`live ${live === 'live' ? 'on' : ''}`} data-testid="live">{live}</span></h2>
      <form className="filters" onSubmit={apply}>
        <label>Model
          <select value={form.model} onChange={(e) => setForm((f) => ({ ...f, model: e.target.value }))}>
            <option value="">any</option>
            {models.map((m) => <option key={m.name} value={m.name}>{m.name}</option>)}
          </select>
        </label>
        <label>Currency
          <input size="8" placeholder="USD,EUR" value={form.currency}
                 onChange={(e) => setForm((f) => ({ ...f, currency: e.target.value }))} />
        </label>
        <label>Status
          <select value={form.status} onChange={(e) => setForm((f) => ({ ...f, status: e.target.value }))}>
            <option value="">any</option>
            {STATUSES.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </label>
        <label>Window from (UTC)
          <input type="datetime-local" step="1" value={form.windowFrom}
                 onChange={(e) => setForm((f) => ({ ...f, windowFrom: e.target.value }))} />
        </label>
        <label>to (UTC)
          <input type="datetime-local" step="1" value={form.windowTo}
                 onChange={(e) => setForm((f) => ({ ...f, windowTo: e.target.value }))} />
        </label>
        <button type="submit">Apply</button>
        <button type="button" onClick={load}>Refresh</button>
      </form>
      <ErrorLine error={error} />
      {counts && (
        <ul className="counts" data-testid="counts">
          {STATUSES.map((s) => <li key={s}><span className={`status ${s}`}>{s}</span> {counts[s].totalCount}</li>)}
        </ul>
      )}
      {may(viewer, 'batchLifecycle') && <ByTransfer onDone={refresh} />}
      {page && (
        <>
          <table className="grid" data-testid="batches">
            <thead>
              <tr>
                {may(viewer, 'createMatrix') && <th />}
                <th>Batch</th><th>Status</th><th>Model</th><th>Window (UTC)</th><th>Currency</th>
                <th className="num">Transfers</th>
              </tr>
            </thead>
            <tbody>
              {page.edges.map(({ node: b }) => (
                <tr key={b.id} data-batch={b.name}>
                  {may(viewer, 'createMatrix') && (
                    <td><input type="checkbox" aria-label={`select ${b.name}`} checked={selected.has(b.id)}
                               onChange={() => toggle(b.id)} /></td>
                  )}
                  <td><a href={`#/batches/${b.id}`}>{b.name}</a></td>
                  <td><span className={`status ${b.status}`}>{b.status}</span></td>
                  <td>{b.model.name}</td>
                  <td>{when(b.windowStart)} – {when(b.windowEnd)}</td>
                  <td>{b.currency}</td>
                  <td className="num">{b.transferCount}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <p className="pager">
            {page.totalCount} batches; page {cursors.length}
            <button type="button" disabled={cursors.length === 1} onClick={() => setCursors(cursors.slice(0, -1))}>
              Previous</button>
            <button type="button" disabled={!page.pageInfo.hasNextPage}
                    onClick={() => setCursors([...cursors, page.pageInfo.endCursor])}>Next</button>
          </p>
          {may(viewer, 'createMatrix') && (
            <div className="action">
              <button type="button" disabled={!selected.size || staticMatrix.busy} onClick={createStatic}>
                Create a matrix from {selected.size} selected batch{selected.size === 1 ? '' : 'es'}</button>
              <Problems errors={staticMatrix.problems} />
            </div>
          )}
        </>
      )}
    </section>
  );
}

function LifecycleActions({ batchRef, status, onDone }) {
  const [reason, setReason] = useState('');
  const action = useAction();
  async function act(kind) {
    const payload = await action.run(async () => (await request(lifecycleMutation(kind),
      { ref: batchRef, reason: reason || null })).result);
    if (payload?.batch && !payload.userErrors.length) {
      setReason('');
      onDone?.();
    }
  }
  return (
    <div className="action">
      <input placeholder="reason" value={reason} onChange={(e) => setReason(e.target.value)} aria-label="reason" />
      {Object.keys(LIFECYCLE).map((kind) => (
        <button key={kind} type="button" disabled={action.busy || (status && !ALLOWED_FROM[kind].includes(status))}
                onClick={() => act(kind)}>{kind === 'resolve' ? 'Resolve dispute' : kind[0].toUpperCase() + kind.slice(1)}</button>
      ))}
      <Problems errors={action.problems} />
    </div>
  );
}

function ByTransfer({ onDone }) {
  const [transferId, setTransferId] = useState('');
  return (
    <details className="by-transfer">
      <summary>Close, dispute or resolve the batch of a transfer</summary>
      <input placeholder="transfer id" value={transferId} onChange={(e) => setTransferId(e.target.value)}
             aria-label="transfer id" />
      {transferId && <LifecycleActions batchRef={{ transferId }} status={null} onDone={onDone} />}
    </details>
  );
}

function BatchDetail({ id, viewer }) {
  const [batch, setBatch] = useState(null);
  const [cursors, setCursors] = useState([null]);
  const [error, setError] = useState(null);
  const after = cursors[cursors.length - 1];

  async function load() {
    try {
      const data = await request(DETAIL, { id, after });
      setBatch(data.batch);
      setError(data.batch ? null : { code: 'NOT_FOUND', message: `no batch ${id}` });
    } catch (err) {
      setError(err);
    }
  }
  const refresh = useThrottled(load, 250);
  useEffect(() => { load(); }, [id, after]);
  useEffect(() => subscribe(LIVE_ONE, { ids: [id] }, refresh), [id]);

  return (
    <section>
      <p><a href="#/batches">← Batches</a></p>
      <ErrorLine error={error} />
      {batch && (
        <>
          <h2>{batch.name} <span className={`status ${batch.status}`}>{batch.status}</span></h2>
          <p>Model {batch.model.name}, window {when(batch.windowStart)} – {when(batch.windowEnd)},
            {' '}{batch.transferCount} transfers
            {batch.segment.length > 0 && `, segment ${batch.segment.map((a) => `${a.key}=${a.value}`).join(', ')}`}
            {batch.ownerMatrix && <>, held by <a href={`#/matrices/${batch.ownerMatrix.id}`}>matrix {batch.ownerMatrix.id}</a></>}
          </p>
          {may(viewer, 'batchLifecycle') && <LifecycleActions batchRef={{ id: batch.id }} status={batch.status} onDone={load} />}
          <h3>Accounts</h3>
          <table className="grid">
            <thead><tr><th>Participant</th><th className="num">Debit</th><th className="num">Credit</th><th className="num">Net</th></tr></thead>
            <tbody>
              {batch.accounts.map((a) => (
                <tr key={a.participantId + a.currency}>
                  <td>{a.participantId}</td>
                  <Amount value={a.debit} currency={a.currency} />
                  <Amount value={a.credit} currency={a.currency} />
                  <Amount value={a.net} currency={a.currency} />
                </tr>
              ))}
            </tbody>
          </table>
          <h3>History</h3>
          <table className="grid">
            <thead><tr><th>At (UTC)</th><th>From</th><th>To</th><th>Actor</th><th>Reason</th><th>Matrix</th></tr></thead>
            <tbody>
              {batch.history.map((h, i) => (
                <tr key={i}><td>{when(h.at)}</td><td>{h.from ?? '—'}</td><td>{h.to}</td><td>{h.actor}</td>
                  <td>{h.reason}</td><td>{h.matrix?.id}</td></tr>
              ))}
            </tbody>
          </table>
          <h3>Transfers ({batch.transfers.totalCount})</h3>
          <table className="grid">
            <thead><tr><th>Transfer</th><th>Payer</th><th>Payee</th><th className="num">Amount</th><th>Committed (UTC)</th></tr></thead>
            <tbody>
              {batch.transfers.edges.map(({ node: t }) => (
                <tr key={t.transferId}><td>{t.transferId}</td><td>{t.payerId}</td><td>{t.payeeId}</td>
                  <Amount value={t.amount} currency={t.currency} /><td>{when(t.committedAt)}</td></tr>
              ))}
            </tbody>
          </table>
          <p className="pager">
            <button type="button" disabled={cursors.length === 1} onClick={() => setCursors(cursors.slice(0, -1))}>Previous</button>
            <button type="button" disabled={!batch.transfers.pageInfo.hasNextPage}
                    onClick={() => setCursors([...cursors, batch.transfers.pageInfo.endCursor])}>Next</button>
          </p>
        </>
      )}
    </section>
  );
}

const LIVE_ONE = `subscription One($ids: [ID!]) { batchStatusChanged(batchIds: $ids) { to } }`;
