// Matrices: create by criteria (or from selected batches, on the board), live totals by matrixUpdated, the
// checksum; request settlement, settle as another user (four-eyes), cancel; the settlement report and its CSV.
import { useEffect, useMemo, useState } from 'react';
import { request, subscribe, useConnection } from './api.js';
import { may } from './roles.js';
import { Amount, ErrorLine, Problems, csvCell, useAction, utcInput, when } from './ui.jsx';

const UNIT_SECONDS = { SECOND: 1, MINUTE: 60, HOUR: 3600, DAY: 86400 };

const REPORT = `fragment Report on SettlementReport {
  id settledAt requestedBy settledBy participants { participantId currency debit credit net }
}`;
const MATRIX = `fragment Matrix on SettlementMatrix {
  id type status batchCount checksum requestedBy createdAt
  criteria { model { name } period { unit start end } currencies segment { key value } batchStatuses }
  byStatus { status currency batchCount debit credit }
  byCurrency { currency batchCount debit credit }
  participants { participantId currency debit credit net }
  settleable { participantId currency debit credit net }
  settlement { ...Report }
}
${REPORT}`;

const LIST = `query List($after: String) {
  matrices(first: 20, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { id type status batchCount createdAt requestedBy } }
  }
}`;
const ONE = `query One($id: ID!) { matrix(id: $id) { ...Matrix } } ${MATRIX}`;
const LIVE = `subscription Live($id: ID!) { matrixUpdated(id: $id) { ...Matrix } } ${MATRIX}`;
const MODELS = '{ settlementModels { name currencies batchIntervalSeconds segmentBy isActive } }';
const SEGMENTS = `query Segments($model: String!, $period: PeriodInput!) {
  settlementModel(name: $model) { segments(period: $period) { currency values { key value } batchCount } }
}`;
const CREATE = `mutation Create($input: MatrixInput!) {
  result: createMatrix(input: $input) { matrix { id } skipped { reason batch { name } } userErrors { code message field } }
}`;
const REQUEST = `mutation Request($id: ID!, $checksum: String) {
  result: requestSettlement(id: $id, expectedChecksum: $checksum) { matrix { ...Matrix } userErrors { code message } }
} ${MATRIX}`;
const SETTLE = `mutation Settle($id: ID!, $checksum: String) {
  result: settleMatrix(id: $id, expectedChecksum: $checksum) {
    matrix { ...Matrix } report { ...Report } userErrors { code message }
  }
} ${MATRIX}`;
const CANCEL = `mutation Cancel($id: ID!) {
  result: cancelSettlement(id: $id) { matrix { ...Matrix } userErrors { code message } }
} ${MATRIX}`;

export function MatricesPage({ viewer, arg }) {
  if (arg) return <MatrixDetail id={arg} viewer={viewer} />;
  return (
    <section>
      <h2>Matrices</h2>
      {may(viewer, 'createMatrix') && <CreateMatrix />}
      <MatrixList />
    </section>
  );
}

function MatrixList() {
  const [cursors, setCursors] = useState([null]);
  const [page, setPage] = useState(null);
  const [error, setError] = useState(null);
  const after = cursors[cursors.length - 1];
  useEffect(() => {
    request(LIST, { after }).then((d) => setPage(d.matrices)).catch(setError);
  }, [after]);
  return (
    <>
      <ErrorLine error={error} />
      {page && (
        <>
          <table className="grid" data-testid="matrices">
            <thead><tr><th>Matrix</th><th>Type</th><th>Status</th><th className="num">Batches</th><th>Created (UTC)</th><th>Requested by</th></tr></thead>
            <tbody>
              {page.edges.map(({ node: m }) => (
                <tr key={m.id}><td><a href={`#/matrices/${m.id}`}>Matrix {m.id}</a></td><td>{m.type}</td>
                  <td><span className={`status ${m.status}`}>{m.status}</span></td><td className="num">{m.batchCount}</td>
                  <td>{when(m.createdAt)}</td><td>{m.requestedBy}</td></tr>
              ))}
            </tbody>
          </table>
          <p className="pager">{page.totalCount} matrices
            <button type="button" disabled={cursors.length === 1} onClick={() => setCursors(cursors.slice(0, -1))}>Previous</button>
            <button type="button" disabled={!page.pageInfo.hasNextPage}
                    onClick={() => setCursors([...cursors, page.pageInfo.endCursor])}>Next</button>
          </p>
        </>
      )}
    </>
  );
}

function CreateMatrix() {
  const [models, setModels] = useState([]);
  const [form, setForm] = useState({ model: '', unit: 'DAY', start: '', end: '', currencies: [], segment: '' });
  const [segments, setSegments] = useState(null);
  const action = useAction();
  const segmentSearch = useAction();

  useEffect(() => {
    request(MODELS).then((d) => {
      setModels(d.settlementModels);
      const first = d.settlementModels.find((m) => m.isActive) || d.settlementModels[0];
      if (first) setForm((f) => ({ ...f, model: f.model || first.name }));
    }).catch(() => {});
  }, []);

  const model = models.find((m) => m.name === form.model);
  // A period's unit may not be shorter than the model's batch window, and must hold whole windows.
  const units = Object.keys(UNIT_SECONDS).filter((u) => !model || (UNIT_SECONDS[u] >= model.batchIntervalSeconds
    && UNIT_SECONDS[u] % model.batchIntervalSeconds === 0));
  const period = { unit: form.unit, start: utcInput(form.start), end: utcInput(form.end) };

  async function findSegments() {
    const payload = await segmentSearch.run(async () => {
      const data = await request(SEGMENTS, { model: form.model, period });
      setSegments(data.settlementModel?.segments || []);
      return null;
    });
    return payload;
  }

  async function create(event) {
    event.preventDefault();
    const segment = form.segment ? JSON.parse(form.segment) : null;
    const input = {
      model: form.model, period,
      currencies: form.currencies.length ? form.currencies : (segment ? [segment.currency] : null),
      segment: segment ? segment.values : null,
    };
    const payload = await action.run(async () => (await request(CREATE, { input })).result);
    if (payload?.matrix) location.hash = `#/matrices/${payload.matrix.id}`;
  }

  // Updates from the state as it is (not as this render saw it): the models' answer may set the model between a
  // render and an input's event, and a stale copy would put the model back to none (Create matrix disabled).
  function toggleCurrency(c) {
    setForm((f) => ({ ...f, currencies: f.currencies.includes(c) ? f.currencies.filter((x) => x !== c)
      : [...f.currencies, c] }));
  }

  return (
    <form className="create-matrix" onSubmit={create}>
      <h3>Create a matrix by criteria</h3>
      <label>Model
        <select name="model" value={form.model} onChange={(e) => setForm((f) => ({ ...f, model: e.target.value }))}>
          {models.map((m) => <option key={m.name} value={m.name}>{m.name}</option>)}
        </select>
      </label>
      <label>Unit
        <select name="unit" value={form.unit} onChange={(e) => setForm((f) => ({ ...f, unit: e.target.value }))}>
          {units.map((u) => <option key={u} value={u}>{u}</option>)}
        </select>
      </label>
      <label>Start (UTC)
        <input name="start" type="datetime-local" step="1" value={form.start}
               onChange={(e) => setForm((f) => ({ ...f, start: e.target.value }))} required />
      </label>
      <label>End (UTC)
        <input name="end" type="datetime-local" step="1" value={form.end}
               onChange={(e) => setForm((f) => ({ ...f, end: e.target.value }))} required />
      </label>
      {model?.currencies?.length > 0 && (
        <fieldset><legend>Currencies</legend>
          {model.currencies.map((c) => (
            <label key={c}><input type="checkbox" checked={form.currencies.includes(c)} onChange={() => toggleCurrency(c)} />{c}</label>
          ))}
        </fieldset>
      )}
      {model?.segmentBy?.length > 0 && (
        <fieldset><legend>Segment</legend>
          <button type="button" onClick={findSegments} disabled={!form.start || !form.end}>Find segments in the period</button>
          <Problems errors={segmentSearch.problems} />
          {segments && (
            <select value={form.segment} onChange={(e) => setForm((f) => ({ ...f, segment: e.target.value }))}>
              <option value="">every segment</option>
              {segments.map((s, i) => (
                <option key={i} value={JSON.stringify({ currency: s.currency, values: s.values })}>
                  {s.currency} {s.values.map((v) => `${v.key}=${v.value}`).join(', ')} ({s.batchCount} batches)
                </option>
              ))}
            </select>
          )}
        </fieldset>
      )}
      <button type="submit" disabled={action.busy || !form.model}>Create matrix</button>
      <Problems errors={action.problems} />
    </form>
  );
}

function Totals({ rows, testid }) {
  return (
    <table className="grid" data-testid={testid}>
      <thead><tr><th>Participant</th><th className="num">Debit</th><th className="num">Credit</th><th className="num">Net</th></tr></thead>
      <tbody>
        {rows.map((r) => (
          <tr key={r.participantId + r.currency}><td>{r.participantId}</td>
            <Amount value={r.debit} currency={r.currency} /><Amount value={r.credit} currency={r.currency} />
            <Amount value={r.net} currency={r.currency} /></tr>
        ))}
      </tbody>
    </table>
  );
}

function reportCsv(matrix, report) {
  const lines = [['matrix', 'report', 'settledAt', 'requestedBy', 'settledBy', 'participantId', 'currency', 'debit',
    'credit', 'net']];
  for (const p of report.participants) {
    lines.push([matrix.id, report.id, report.settledAt, report.requestedBy, report.settledBy, p.participantId,
      p.currency, p.debit, p.credit, p.net]);
  }
  return lines.map((l) => l.map(csvCell).join(',')).join('\r\n') + '\r\n';
}

function Report({ matrix, report }) {
  const href = useMemo(() => URL.createObjectURL(new Blob([reportCsv(matrix, report)], { type: 'text/csv' })),
    [matrix.id, report]);
  useEffect(() => () => URL.revokeObjectURL(href), [href]);
  return (
    <section className="report" data-testid="report">
      <h3>Settlement report {report.id}</h3>
      <p>Settled {when(report.settledAt)} by {report.settledBy}, requested by {report.requestedBy ?? '—'}.{' '}
        <a href={href} download={`settlement-report-${report.id}-matrix-${matrix.id}.csv`}>Download CSV</a></p>
      <Totals rows={report.participants} testid="report-participants" />
    </section>
  );
}

function MatrixDetail({ id, viewer }) {
  const [matrix, setMatrix] = useState(null);
  const [report, setReport] = useState(null);
  const [error, setError] = useState(null);
  const live = useConnection();
  const requestAction = useAction();
  const settleAction = useAction();
  const cancelAction = useAction();

  useEffect(() => {
    request(ONE, { id }).then((d) => {
      if (!d.matrix) setError({ code: 'NOT_FOUND', message: `no matrix ${id}` });
      setMatrix(d.matrix);
    }).catch(setError);
    return subscribe(LIVE, { id }, (d) => setMatrix(d.matrixUpdated), setError);
  }, [id]);

  async function mutate(action, query, extra = {}) {
    const payload = await action.run(async () => (await request(query, { id, checksum: matrix.checksum, ...extra })).result);
    if (payload?.matrix) setMatrix(payload.matrix);
    if (payload?.report) setReport(payload.report);
  }

  if (error) return <section><p><a href="#/matrices">← Matrices</a></p><ErrorLine error={error} /></section>;
  if (!matrix) return <p className="loading">Loading…</p>;
  const shownReport = report || matrix.settlement;
  const c = matrix.criteria;
  return (
    <section data-testid="matrix">
      <p><a href="#/matrices">← Matrices</a></p>
      <h2>Matrix {matrix.id} <span className={`status ${matrix.status}`} data-testid="matrix-status">{matrix.status}</span>
        {' '}<span className={`live ${live === 'live' ? 'on' : ''}`}>{live}</span></h2>
      <p>{matrix.type} · {matrix.batchCount} batch{matrix.batchCount === 1 ? '' : 'es'} · created {when(matrix.createdAt)}
        {c && <> · {c.model.name}{c.period && `, ${c.period.unit} ${when(c.period.start)} – ${when(c.period.end)}`}
          {c.currencies.length > 0 && `, ${c.currencies.join(', ')}`}
          {c.segment.length > 0 && `, ${c.segment.map((a) => `${a.key}=${a.value}`).join(', ')}`}</>}
        {matrix.requestedBy && <> · settlement requested by {matrix.requestedBy}</>}</p>
      <p>Checksum <code data-testid="checksum">{matrix.checksum}</code></p>
      <div className="actions">
        {may(viewer, 'requestSettlement') && matrix.status === 'OPEN' && (
          <div className="action">
            <button type="button" disabled={requestAction.busy} onClick={() => mutate(requestAction, REQUEST)}>
              Request settlement</button>
            <Problems errors={requestAction.problems} />
          </div>
        )}
        {may(viewer, 'settle') && matrix.status === 'AWAITING_SETTLEMENT' && (
          <>
            <div className="action">
              <button type="button" disabled={settleAction.busy} onClick={() => mutate(settleAction, SETTLE)}>
                Settle</button>
              <Problems errors={settleAction.problems} />
            </div>
            <div className="action">
              <button type="button" disabled={cancelAction.busy} onClick={() => mutate(cancelAction, CANCEL, { checksum: undefined })}>
                Cancel settlement</button>
              <Problems errors={cancelAction.problems} />
            </div>
          </>
        )}
      </div>
      {shownReport && <Report matrix={matrix} report={shownReport} />}
      <h3>Settleable now, per participant and currency</h3>
      <Totals rows={matrix.settleable} testid="settleable" />
      <h3>All batches, per participant and currency</h3>
      <Totals rows={matrix.participants} testid="participants" />
      <h3>By status</h3>
      <table className="grid">
        <thead><tr><th>Status</th><th className="num">Batches</th><th className="num">Debit</th><th className="num">Credit</th></tr></thead>
        <tbody>
          {matrix.byStatus.map((s) => (
            <tr key={s.status + s.currency}><td><span className={`status ${s.status}`}>{s.status}</span></td>
              <td className="num">{s.batchCount}</td><Amount value={s.debit} currency={s.currency} />
              <Amount value={s.credit} currency={s.currency} /></tr>
          ))}
        </tbody>
      </table>
      <h3>By currency</h3>
      <table className="grid">
        <thead><tr><th>Currency</th><th className="num">Batches</th><th className="num">Debit</th><th className="num">Credit</th></tr></thead>
        <tbody>
          {matrix.byCurrency.map((s) => (
            <tr key={s.currency}><td>{s.currency}</td><td className="num">{s.batchCount}</td>
              <Amount value={s.debit} currency={s.currency} /><Amount value={s.credit} currency={s.currency} /></tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
