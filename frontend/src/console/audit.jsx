// The audit log (SPEC §10), for ADMIN and AUDITOR: filtered pages, oldest first, and the hash chain's check.
import { useEffect, useState } from 'react';
import { request } from './api.js';
import { ErrorLine, utcInput, when } from './ui.jsx';

const LOG = `query Log($filter: AuditFilter, $after: String) {
  auditLog(filter: $filter, first: 50, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { id at actor role operation target outcome code } }
  }
}`;
const VERIFY = '{ auditVerification { ok entriesChecked firstBrokenEntryId sealedThroughEntryId } }';

export function AuditPage() {
  const [form, setForm] = useState({ actor: '', operation: '', outcome: '', from: '', to: '' });
  const [filter, setFilter] = useState({});
  const [cursors, setCursors] = useState([null]);
  const [page, setPage] = useState(null);
  const [verification, setVerification] = useState(null);
  const [error, setError] = useState(null);
  const after = cursors[cursors.length - 1];
  useEffect(() => {
    request(LOG, { filter, after }).then((d) => { setPage(d.auditLog); setError(null); }).catch(setError);
  }, [filter, after]);
  function apply(event) {
    event.preventDefault();
    setCursors([null]);
    setFilter({ actor: form.actor || null, operation: form.operation || null, outcome: form.outcome || null,
                from: utcInput(form.from), to: utcInput(form.to) });
  }
  return (
    <section>
      <h2>Audit log</h2>
      <form className="filters" onSubmit={apply}>
        <label>Actor <input value={form.actor} onChange={(e) => setForm((f) => ({ ...f, actor: e.target.value }))} /></label>
        <label>Operation <input value={form.operation} onChange={(e) => setForm((f) => ({ ...f, operation: e.target.value }))} /></label>
        <label>Outcome
          <select value={form.outcome} onChange={(e) => setForm((f) => ({ ...f, outcome: e.target.value }))}>
            <option value="">any</option><option>OK</option><option>REFUSED</option><option>FAILED</option>
          </select>
        </label>
        <label>From (UTC) <input type="datetime-local" step="1" value={form.from} onChange={(e) => setForm((f) => ({ ...f, from: e.target.value }))} /></label>
        <label>To (UTC) <input type="datetime-local" step="1" value={form.to} onChange={(e) => setForm((f) => ({ ...f, to: e.target.value }))} /></label>
        <button type="submit">Apply</button>
        <button type="button" onClick={() => request(VERIFY).then((d) => setVerification(d.auditVerification)).catch(setError)}>
          Verify the chain</button>
      </form>
      {verification && (
        <p className={verification.ok ? 'ok' : 'problems'} role="status">
          {verification.ok ? 'The chain holds' : `The chain breaks at entry ${verification.firstBrokenEntryId}`}:
          {' '}{verification.entriesChecked} entries checked, sealed through {verification.sealedThroughEntryId ?? '—'}.
        </p>
      )}
      <ErrorLine error={error} />
      {page && (
        <>
          <table className="grid" data-testid="audit">
            <thead><tr><th>#</th><th>At (UTC)</th><th>Actor</th><th>Role</th><th>Operation</th><th>Target</th><th>Outcome</th><th>Code</th></tr></thead>
            <tbody>
              {page.edges.map(({ node: e }) => (
                <tr key={e.id}><td>{e.id}</td><td>{when(e.at)}</td><td>{e.actor}</td><td>{e.role}</td><td>{e.operation}</td>
                  <td>{e.target}</td><td>{e.outcome}</td><td>{e.code}</td></tr>
              ))}
            </tbody>
          </table>
          <p className="pager">{page.totalCount} entries
            <button type="button" disabled={cursors.length === 1} onClick={() => setCursors(cursors.slice(0, -1))}>Previous</button>
            <button type="button" disabled={!page.pageInfo.hasNextPage}
                    onClick={() => setCursors([...cursors, page.pageInfo.endCursor])}>Next</button>
          </p>
        </>
      )}
    </section>
  );
}
