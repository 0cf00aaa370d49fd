// Small pieces every page uses: amounts as the API sends them, user errors beside their action, throttled refresh.
import { useEffect, useRef, useState } from 'react';

/** An exact amount string as the API sent it (never parsed into a float), with its currency. */
export function Amount({ value, currency }) {
  if (value === null || value === undefined) return <td className="amount">—</td>;
  return <td className="amount">{value} <span className="currency">{currency}</span></td>;
}

/** The userErrors of a mutation, or a refused call, shown next to the action that caused them. */
export function Problems({ errors }) {
  if (!errors?.length) return null;
  return (
    <ul className="problems" role="alert">
      {errors.map((e, i) => <li key={i}><code>{e.code}</code> {e.message}</li>)}
    </ul>
  );
}

/** Runs a mutation; its payload's userErrors, or the thrown ApiError, become the action's problems. */
export function useAction() {
  const [problems, setProblems] = useState([]);
  const [busy, setBusy] = useState(false);
  async function run(call) {
    setBusy(true);
    setProblems([]);
    try {
      const payload = await call();
      if (payload?.userErrors?.length) setProblems(payload.userErrors);
      return payload;
    } catch (err) {
      setProblems([{ code: err.code || 'ERROR', message: err.message }]);
      return null;
    } finally {
      setBusy(false);
    }
  }
  return { problems, busy, run };
}

/** Calls fn at most once per `ms` (first call at once, the last one never lost): live updates can arrive by
 * thousands when a day is settled, and each only says "look again". */
export function useThrottled(fn, ms) {
  const latest = useRef(fn);
  latest.current = fn;
  const state = useRef({ timer: null, last: 0, pending: false });
  useEffect(() => () => clearTimeout(state.current.timer), []);
  return () => {
    const s = state.current;
    const wait = s.last + ms - Date.now();
    if (wait <= 0 && !s.timer) {
      s.last = Date.now();
      latest.current();
    } else if (!s.timer) {
      s.timer = setTimeout(() => {
        s.timer = null;
        s.last = Date.now();
        latest.current();
      }, Math.max(wait, 0));
    }
  };
}

export function when(iso) {
  // Whole seconds, UTC: the API answers in UTC; fractions only clutter a table.
  return iso ? iso.replace('T', ' ').replace(/\.\d+/, '').replace(/\+00:00$|Z$/, ' UTC') : '';
}

/** A datetime-local value (read as UTC) as the API's DateTime, or null when empty. */
export function utcInput(value) {
  if (!value) return null;
  return `${value.length === 16 ? value + ':00' : value}Z`;
}

export function csvCell(value) {
  const text = value === null || value === undefined ? '' : String(value);
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function ErrorLine({ error }) {
  if (!error) return null;
  return <p className="problems" role="alert"><code>{error.code}</code> {error.message}</p>;
}
