"""The GraphQL documents shared by the subscription tests: batchStatusChanged and the batch transitions."""

STATUS = """subscription($model: String, $ids: [ID!]) {
  batchStatusChanged(model: $model, batchIds: $ids) {
    batch { id name status transferCount model { name } } from to at actor reason } }"""
CLOSE = """mutation($id: String!, $reason: String) { closeBatch(ref: {transferId: $id}, reason: $reason) {
  batch { id status } userErrors { code } } }"""
DISPUTE = """mutation($id: String!) { disputeBatch(ref: {transferId: $id}) { batch { id } userErrors { code } } }"""
RESOLVE = """mutation($id: String!) { resolveBatchDispute(ref: {transferId: $id}) {
  batch { id } userErrors { code } } }"""
