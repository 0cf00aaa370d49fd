"""The operator console at /console (SPEC §14) in a real Chromium with the internet blocked: sign-in, the live batch
board, a matrix created, requested by an OPERATOR and settled by a SETTLER (four-eyes), its report and CSV; what a
VIEWER is (not) offered; a wrong key refused. Screenshots of each page go to tests/artefacts/."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.support.browser import sign_in
from tests.support.matrices import create_matrix
from tests.support.server import key_of
from tests.support.transfers import record, transfer

DAY = ("2026-03-02T00:00:00", "2026-03-03T00:00:00")


async def signed_in(tab, role: str) -> None:
    await sign_in(tab, key_of(role))
    await tab.page.wait_for_selector("[data-testid=who]")


async def test_operator_and_settler_settle_what_the_board_showed_live(server, gql, browser):
    async with browser.tab(server.base_url) as operator:
        await signed_in(operator, "operator")
        await operator.page.wait_for_selector("[data-testid=batches]")
        await operator.page.wait_for_timeout(1000)  # the board's subscription registers with the server

        recorded = await record(gql, transfer("t-live", payer="dfsp-a", payee="dfsp-b", amount="1250.50"))
        committed = time.monotonic()
        name = recorded["results"][0]["batch"]["name"]
        await operator.page.wait_for_selector(f"tr[data-batch='{name}']", timeout=1_000)
        shown_after = time.monotonic() - committed
        assert shown_after < 1.0, f"the new batch reached the board {shown_after:.2f} s after its commit"
        print(f"commit to board: {shown_after * 1000:.0f} ms")  # the figure, with pytest -rP
        assert await operator.page.locator("[data-testid=counts]").inner_text() != ""
        await operator.screenshot("console-batches")

        await operator.page.click(f"tr[data-batch='{name}'] a")
        await operator.page.get_by_text("Accounts").wait_for()
        assert await operator.page.locator("td.amount", has_text="1250.50").count() >= 1
        await operator.screenshot("console-batch")

        await operator.page.click("nav >> text=Matrices")
        await operator.page.select_option("select[name=unit]", "DAY")
        await operator.page.fill("input[name=start]", DAY[0])
        await operator.page.fill("input[name=end]", DAY[1])
        await operator.page.get_by_role("button", name="Create matrix").click()
        checksum = operator.page.locator("[data-testid=checksum]")
        await checksum.wait_for()
        matrix_id = operator.page.url.rsplit("/", 1)[-1]
        settleable = await operator.page.locator("[data-testid=settleable]").inner_text()
        assert "dfsp-a" in settleable and "-1250.50" in settleable
        # An OPERATOR may request settlement, not settle.
        assert await operator.page.get_by_role("button", name="Settle", exact=True).count() == 0
        await operator.page.get_by_role("button", name="Request settlement").click()
        await operator.page.locator("[data-testid=matrix-status]", has_text="AWAITING_SETTLEMENT").wait_for()
        await operator.screenshot("console-matrix-requested")
        operator.assert_clean()

    async with browser.tab(server.base_url) as settler:
        await signed_in(settler, "settler")
        await settler.open(f"/console#/matrices/{matrix_id}")
        await settler.page.get_by_role("button", name="Settle", exact=True).click()
        report = settler.page.locator("[data-testid=report]")
        await report.wait_for()
        text = await report.inner_text()
        assert "sam-settler" in text and "oscar-operator" in text
        assert "1250.50" in await settler.page.locator("[data-testid=report-participants]").inner_text()
        await settler.page.locator("[data-testid=matrix-status]", has_text="SETTLED").wait_for()
        async with settler.page.expect_download() as download:
            await settler.page.click("text=Download CSV")
        csv = await asyncio.to_thread(Path(await (await download.value).path()).read_text)
        assert csv.splitlines()[0].startswith("matrix,report,settledAt")
        assert any(",dfsp-a,USD,1250.50,0.00,-1250.50" in line for line in csv.splitlines()), csv
        await settler.screenshot("console-matrix-settled")
        settler.assert_clean()


async def test_a_viewer_is_offered_no_action(server, gql, browser):
    recorded = await record(gql, transfer("t-view"))
    batch_id = recorded["results"][0]["batch"]["id"]
    matrix = await create_matrix(gql, model="DEFAULT", start="2026-03-02T00:00:00+00:00",
                                 end="2026-03-03T00:00:00+00:00", unit="DAY")
    async with browser.tab(server.base_url) as viewer:
        await signed_in(viewer, "viewer")
        await viewer.page.wait_for_selector("[data-testid=batches] tbody tr")
        page = viewer.page
        assert await page.locator("input[type=checkbox]").count() == 0
        assert await page.get_by_text("Create a matrix").count() == 0
        assert await page.get_by_text("Close, dispute or resolve").count() == 0
        assert await page.locator("nav >> text=Audit log").count() == 0
        await viewer.open(f"/console#/batches/{batch_id}")
        await page.get_by_text("Accounts").wait_for()
        for label in ("Close", "Dispute", "Resolve dispute"):
            assert await page.get_by_role("button", name=label, exact=True).count() == 0
        await viewer.open(f"/console#/matrices/{matrix['id']}")
        await page.locator("[data-testid=checksum]").wait_for()
        for label in ("Request settlement", "Settle", "Cancel settlement"):
            assert await page.get_by_role("button", name=label, exact=True).count() == 0
        await page.click("nav >> text=Matrices")
        assert await page.get_by_text("Create a matrix by criteria").count() == 0
        await viewer.screenshot("console-viewer-matrices")
        viewer.assert_clean()


async def test_a_wrong_key_is_refused_with_a_clear_message(server, gql, browser):
    async with browser.tab(server.base_url) as tab:
        await sign_in(tab, "not-a-key")
        alert = tab.page.get_by_role("alert")
        await alert.wait_for()
        assert "Sign-in refused" in await alert.inner_text()
        assert await tab.page.locator("[data-testid=who]").count() == 0
        await tab.screenshot("console-sign-in-refused")
        tab.assert_clean()


async def test_every_page_renders_for_an_admin(server, gql, browser):
    await record(gql, transfer("t-a", amount="12.34"), transfer("t-b", payer="dfsp-b", payee="dfsp-c", amount="0.01"))
    matrix = await create_matrix(gql, model="DEFAULT", start="2026-03-02T00:00:00+00:00",
                                 end="2026-03-03T00:00:00+00:00", unit="DAY")
    grant = await gql("""mutation { createGrant(input: { payerId: "dfsp-a", debitAmount: { value: "1000.00",
        currency: "USD" }, interval: "R/2026-03-01T00:00:00Z/P1D" }) { grant { id } userErrors { code } } }""",
                      role="operator")
    grant_id = grant["createGrant"]["grant"]["id"]
    async with browser.tab(server.base_url) as admin:
        await signed_in(admin, "admin")
        page = admin.page
        await page.wait_for_selector("[data-testid=batches] tbody tr")
        await admin.open(f"/console#/matrices/{matrix['id']}")
        await page.locator("[data-testid=checksum]").wait_for()
        await admin.screenshot("console-matrix")
        await page.click("nav >> text=Matrices")
        await page.locator("[data-testid=matrices]").wait_for()
        await admin.screenshot("console-matrices")
        await page.click("nav >> text=Participants")
        positions = page.locator("[data-testid=positions]")
        await positions.wait_for()
        assert "-12.34" in await positions.inner_text()
        await admin.screenshot("console-participants")
        await admin.open(f"/console#/grants/{grant_id}")
        await page.get_by_text("Debit limit").wait_for()
        assert "1000.00" in await page.locator("table").first.inner_text()
        await admin.screenshot("console-grants")
        await page.click("nav >> text=Audit log")
        audit = page.locator("[data-testid=audit]")
        await audit.wait_for()
        assert "createMatrix" in await audit.inner_text()
        await admin.screenshot("console-audit")
        admin.assert_clean()


async def test_a_refusal_shows_its_code_next_to_the_action(server, gql, browser):
    """An ADMIN may request and settle, but not both on one matrix (four-eyes): the code shows beside Settle."""
    await record(gql, transfer("t-four-eyes"))
    matrix = await create_matrix(gql, model="DEFAULT", start="2026-03-02T00:00:00+00:00",
                                 end="2026-03-03T00:00:00+00:00", unit="DAY")
    async with browser.tab(server.base_url) as admin:
        await signed_in(admin, "admin")
        await admin.open(f"/console#/matrices/{matrix['id']}")
        page = admin.page
        await page.get_by_role("button", name="Request settlement").click()
        settle = page.get_by_role("button", name="Settle", exact=True)
        await settle.click()
        problem = settle.locator("xpath=..").get_by_role("alert")
        await problem.wait_for()
        assert "FOUR_EYES" in await problem.inner_text()
        assert await page.locator("[data-testid=matrix-status]").inner_text() == "AWAITING_SETTLEMENT"
        await admin.screenshot("console-four-eyes-refused")
        admin.assert_clean()


async def test_an_operator_closes_by_transfer_id_and_matrixes_selected_batches(server, gql, browser):
    recorded = await record(gql, transfer("t-close"), transfer("t-keep", committed_at="2026-03-02T15:05:00+00:00"))
    closing, kept = (r["batch"]["name"] for r in recorded["results"])
    async with browser.tab(server.base_url) as operator:
        await signed_in(operator, "operator")
        page = operator.page
        await page.wait_for_selector(f"tr[data-batch='{kept}']")
        await page.get_by_text("Close, dispute or resolve the batch of a transfer").click()
        await page.get_by_label("transfer id").fill("t-close")
        await page.get_by_label("reason").fill("end of window")
        await page.get_by_role("button", name="Close", exact=True).click()
        await page.locator(f"tr[data-batch='{closing}'] .status", has_text="CLOSED").wait_for(timeout=5_000)

        await page.get_by_label(f"select {kept}").check()
        await page.get_by_role("button", name="Create a matrix from 1 selected batch").click()
        await page.locator("[data-testid=checksum]").wait_for()
        assert "STATIC · 1 batch ·" in await page.locator("[data-testid=matrix]").inner_text()
        operator.assert_clean()
    history = await gql("query($n: String!) { batch(ref: {name: $n}) { history { to actor reason } } }",
                        {"n": closing}, role="viewer")
    assert {"to": "CLOSED", "actor": "oscar-operator", "reason": "end of window"} in history["batch"]["history"]
