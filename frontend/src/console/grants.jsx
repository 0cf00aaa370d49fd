// A payment grant (SPEC §9): its limits, interval, spent amounts now and over its life, and its latest changes.
// The API answers a grant by id (there is no list of grants), so the page asks for one.
import { useEffect, useState } from 'react';
import { request } from './api.js';
import { Amount, ErrorLine, when } from './ui.jsx';

const GRANT = `query Grant($id: ID!) {
  grant(id: $id) {
    id payerId payeeId interval
    debitAmount { value currency } receiveAmount { value currency }
    spentDebitAmount { value currency } spentReceiveAmount { value currency }
    totalSpentDebitAmount { value currency } totalSpentReceiveAmount { value currency }
    currentInterval { index start end }
    spentAmounts(last: 20) { transferId state transferDebitAmount transferReceiveAmount intervalDebitAmount
      intervalReceiveAmount currency actor recordedAt interval { index } }
  }
}`;

function MoneyRow({ label, money }) {
  return <tr><th>{label}</th>{money ? <Amount value={money.value} currency={money.currency} /> : <td className="amount">no limit</td>}</tr>;
}

export function GrantsPage({ arg }) {
  const [id, setId] = useState(arg || '');
  const [grant, setGrant] = useState(null);
  const [error, setError] = useState(null);
  async function load(grantId) {
    try {
      const data = await request(GRANT, { id: grantId });
      setGrant(data.grant);
      setError(data.grant ? null : { code: 'NOT_FOUND', message: `no grant ${grantId} (or not yours to see)` });
    } catch (err) {
      setError(err);
    }
  }
  useEffect(() => { if (arg) load(arg); }, [arg]);
  return (
    <section>
      <h2>Grants</h2>
      <form className="filters" onSubmit={(e) => { e.preventDefault(); location.hash = `#/grants/${id}`; load(id); }}>
        <label>Grant id <input value={id} onChange={(e) => setId(e.target.value)} size="8" /></label>
        <button type="submit" disabled={!id}>Show</button>
      </form>
      <ErrorLine error={error} />
      {grant && (
        <>
          <h3>Grant {grant.id}: {grant.payerId} → {grant.payeeId ?? 'any payee'}</h3>
          <p>Interval {grant.interval ?? 'none (one limit over the grant’s life)'}
            {grant.currentInterval && <>; current period #{grant.currentInterval.index}: {when(grant.currentInterval.start)} – {when(grant.currentInterval.end)}</>}</p>
          <table className="grid narrow">
            <tbody>
              <MoneyRow label="Debit limit" money={grant.debitAmount} />
              <MoneyRow label="Debit spent (current interval)" money={grant.spentDebitAmount} />
              <MoneyRow label="Debit spent (life)" money={grant.totalSpentDebitAmount} />
              <MoneyRow label="Receive limit" money={grant.receiveAmount} />
              <MoneyRow label="Receive spent (current interval)" money={grant.spentReceiveAmount} />
              <MoneyRow label="Receive spent (life)" money={grant.totalSpentReceiveAmount} />
            </tbody>
          </table>
          <h3>Latest spent-amount records</h3>
          <table className="grid">
            <thead><tr><th>Transfer</th><th>State</th><th>Interval</th><th className="num">Transfer debit</th>
              <th className="num">Interval debit</th><th>Actor</th><th>Recorded (UTC)</th></tr></thead>
            <tbody>
              {grant.spentAmounts.map((s, i) => (
                <tr key={i}><td>{s.transferId}</td><td>{s.state}</td><td>{s.interval?.index ?? '—'}</td>
                  <Amount value={s.transferDebitAmount} currency={s.currency} />
                  <Amount value={s.intervalDebitAmount} currency={s.currency} />
                  <td>{s.actor}</td><td>{when(s.recordedAt)}</td></tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
