// The console speaks only the public GraphQL API: POST /graphql, and graphql-transport-ws for live updates,
// with the signed-in caller's key or token.
import { useEffect, useState } from 'react';
import { createClient } from 'graphql-ws';
import { authorization, storedCredential, websocketUrl } from '../credentials.js';

export class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code || 'ERROR';
  }
}

/** The data of a query or mutation; a GraphQL error (refused key, missing role, bad input) is thrown. */
export async function request(query, variables = {}, credential = storedCredential()) {
  let response;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json',
                 ...(credential ? { Authorization: authorization(credential) } : {}) },
      body: JSON.stringify({ query, variables }),
    });
  } catch (err) {
    throw new ApiError(`the server cannot be reached: ${err.message}`, 'NETWORK');
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`the server answered HTTP ${response.status} without JSON`, 'HTTP_' + response.status);
  }
  if (body.errors?.length) {
    const first = body.errors[0];
    throw new ApiError(first.message, first.extensions?.code);
  }
  return body.data;
}

let socket = null;
let socketCredential = null;

function socketFor(credential) {
  if (socket && socketCredential === credential) return socket;
  socket?.dispose();
  socketCredential = credential;
  socket = createClient({
    url: websocketUrl(),
    lazy: true,
    lazyCloseTimeout: 2000,
    retryAttempts: Infinity, // a restarted server is joined again
    connectionParams: () => (socketCredential ? { Authorization: authorization(socketCredential) } : {}),
    on: {
      connected: () => announce('live'),
      closed: (event) => announce(`not live: ${event?.reason || 'connection closed'}`),
      error: () => announce('not live: the server cannot be reached'),
    },
  });
  return socket;
}

// The WebSocket's state, shown beside live pages: an operator must know when updates stop arriving.
let connection = 'connecting';
const listeners = new Set();

function announce(state) {
  connection = state;
  for (const listener of listeners) listener(state);
}

export function useConnection() {
  const [state, setState] = useState(connection);
  useEffect(() => {
    listeners.add(setState);
    setState(connection);
    return () => listeners.delete(setState);
  }, []);
  return state;
}

export function closeSocket() {
  socket?.dispose();
  socket = null;
  socketCredential = null;
}

/** Calls onEvent with each event's data until the returned function is called. */
export function subscribe(query, variables, onEvent, onError = () => {}) {
  return socketFor(storedCredential()).subscribe(
    { query, variables },
    {
      next: (result) => (result.errors?.length ? onError(new ApiError(result.errors[0].message,
        result.errors[0].extensions?.code)) : onEvent(result.data)),
      error: (err) => onError(err instanceof Error ? err
        : Array.isArray(err) ? new ApiError(err[0]?.message, err[0]?.extensions?.code) // refused by the server
          : new ApiError(err?.reason || 'the live connection closed', 'CLOSED')),
      complete: () => {},
    },
  );
}
