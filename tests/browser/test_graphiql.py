"""GraphiQL at GET /graphql, served whole by settlegraph (SPEC §14): with the internet blocked it loads, signs in
with a key typed into the page (never the URL), runs a query, and streams a subscription over graphql-transport-ws."""
from __future__ import annotations

import json

from tests.support.browser import sign_in
from tests.support.server import key_of
from tests.support.transfers import record, transfer

QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"


async def set_query(tab, query: str) -> None:
    # GraphiQL's editor is CodeMirror 5, which keeps its API on the editor's element: typing would fight the
    # editor's bracket completion. GraphiQL may still be mounting it when the sign-in has answered.
    await tab.page.wait_for_selector(QUERY_EDITOR)
    await tab.page.evaluate("([selector, q]) => document.querySelector(selector).CodeMirror.setValue(q)",
                            [QUERY_EDITOR, query])


async def run(tab) -> None:
    await tab.page.click(".graphiql-execute-button")


async def test_graphiql_runs_a_query_and_a_subscription(server, gql, browser):
    async with browser.tab(server.base_url) as tab:
        await sign_in(tab, key_of("viewer"), "/graphql")
        await tab.page.wait_for_selector(".signin-status:has-text('signed in as vera-viewer')")
        assert key_of("viewer") not in tab.page.url

        await set_query(tab, "{ viewer { name roles } batches(first: 1) { totalCount } }")
        await run(tab)
        result = tab.page.locator(".result-window")
        await result.get_by_text('"vera-viewer"').wait_for(timeout=10_000)
        await tab.screenshot("graphiql-query")

        await set_query(tab, "subscription { batchStatusChanged { batch { name } from to } }")
        await run(tab)
        await tab.page.wait_for_timeout(1000)  # the WebSocket opens and the subscription registers
        recorded = await record(gql, transfer("t-graphiql", amount="1250.50"))
        name = recorded["results"][0]["batch"]["name"]
        await result.get_by_text(json.dumps(name)).wait_for(timeout=5_000)
        await tab.screenshot("graphiql-subscription")
        tab.assert_clean()


async def test_graphiql_refuses_a_wrong_key_in_its_sign_in(server, gql, browser):
    async with browser.tab(server.base_url) as tab:
        await sign_in(tab, "not-a-key", "/graphql")
        status = tab.page.locator(".signin-status")
        await status.get_by_text("refused").wait_for(timeout=5_000)
        assert "UNAUTHENTICATED" in await status.inner_text()
        tab.assert_clean()


async def test_graphiql_takes_the_key_from_its_header_editor_too(server, gql, browser):
    async with browser.tab(server.base_url) as tab:
        await tab.open("/graphql")
        await tab.page.get_by_role("button", name="Headers").click()
        headers = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"
        await tab.page.wait_for_selector(headers)
        await tab.page.evaluate("([selector, value]) => document.querySelector(selector).CodeMirror.setValue(value)",
                                [headers, '{"Authorization": "Bearer ' + key_of("auditor") + '"}'])
        await set_query(tab, "{ viewer { name } }")
        await run(tab)
        await tab.page.locator(".result-window").get_by_text('"ada-auditor"').wait_for(timeout=10_000)
        tab.assert_clean()


async def test_graphiql_runs_a_mutation(server, gql, browser):
    async with browser.tab(server.base_url) as tab:
        await sign_in(tab, key_of("admin"), "/graphql")
        await tab.page.wait_for_selector(".signin-status:has-text('signed in as alice-admin')")
        await set_query(tab, 'mutation { createSettlementModel(input: {name: "FROM_GRAPHIQL", batchIntervalSeconds: '
                             '3600}) { model { name batchIntervalSeconds } userErrors { code } } }')
        await run(tab)
        await tab.page.locator(".result-window").get_by_text('"FROM_GRAPHIQL"').wait_for(timeout=10_000)
        models = await gql("{ settlementModels { name } }", role="viewer")
        assert "FROM_GRAPHIQL" in [m["name"] for m in models["settlementModels"]]  # it was written, not only shown
        tab.assert_clean()
