// What each role may do (SPEC §10): the console offers only these actions. The server decides regardless.
const ACTIONS = {
  batchLifecycle: ['OPERATOR'], // close, dispute, resolve a dispute
  createMatrix: ['OPERATOR'],
  requestSettlement: ['OPERATOR'],
  settle: ['SETTLER'],
  cancelSettlement: ['SETTLER'],
  createGrant: ['OPERATOR'],
  readAuditLog: ['AUDITOR'],
};

export function may(viewer, action) {
  if (!viewer) return false;
  return viewer.roles.includes('ADMIN') || ACTIONS[action].some((role) => viewer.roles.includes(role));
}
