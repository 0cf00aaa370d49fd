// Participant positions per currency (unsettled, settled, settlement balance). Positions move with every
// status change (a batch settled, a refund) and every transfer recorded: the page looks again on each status
// change (at most four times a second) and, since no event tells of a transfer filed into a batch already
// open, every few seconds while the tab is visible.
import { useEffect, useState } from 'react';
import { request, subscribe } from './api.js';
import { Amount, ErrorLine, useThrottled } from './ui.jsx';

const POSITIONS = '{ participants { id positions { currency unsettledNet settledNet settlementBalance } } }';
const LIVE = 'subscription { batchStatusChanged { to } }';
const LOOK_AGAIN_MS = 5000;

export function ParticipantsPage() {
  const [participants, setParticipants] = useState(null);
  const [error, setError] = useState(null);
  async function load() {
    try {
      setParticipants((await request(POSITIONS)).participants);
      setError(null);
    } catch (err) {
      setError(err);
    }
  }
  const refresh = useThrottled(load, 250);
  useEffect(() => { load(); }, []);
  useEffect(() => subscribe(LIVE, {}, refresh, setError), []);
  useEffect(() => {
    const timer = setInterval(() => { if (document.visibilityState === 'visible') refresh(); }, LOOK_AGAIN_MS);
    return () => clearInterval(timer);
  }, []);
  return (
    <section>
      <h2>Participants <button type="button" onClick={load}>Refresh</button></h2>
      <ErrorLine error={error} />
      {participants && (
        <table className="grid" data-testid="positions">
          <thead><tr><th>Participant</th><th>Currency</th><th className="num">Unsettled net</th>
            <th className="num">Settled net</th><th className="num">Settlement balance</th></tr></thead>
          <tbody>
            {participants.flatMap((p) => p.positions.map((pos) => (
              <tr key={p.id + pos.currency}><td>{p.id}</td><td>{pos.currency}</td>
                <Amount value={pos.unsettledNet} currency={pos.currency} />
                <Amount value={pos.settledNet} currency={pos.currency} />
                <Amount value={pos.settlementBalance} currency={pos.currency} /></tr>
            )))}
          </tbody>
        </table>
      )}
    </section>
  );
}
