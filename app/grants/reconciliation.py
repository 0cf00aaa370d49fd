"""Reconciliation of payment grants (SPEC §9): recompute spent amounts from the transfer history and compare.

A mismatch or a missing record is logged and counted (settlegraph_grant_spent_amount_issues_total), never
repaired. `reconcile_grant` is the check (the operator's CLI runs it); `reconcile` is the reconcileGrant
mutation: the same check, audited.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from app import audit
from app.auth import Principal
from app.core import errors, metrics
from app.core.errors import DomainError
from app.grants.grants import find_grant
from app.grants.rules import contribution
from models.grants import Grant, GrantSpentAmount, PreparedTransfer

log = logging.getLogger("settlegraph.grants")

MISMATCH = "MISMATCH"
MISSING = "MISSING"


@dataclass(frozen=True)
class Issue:
    kind: str  # MISMATCH | MISSING
    subject: str  # "transfer t-1", "period 3", "grant total", "record 17"
    field: str
    expected: int | None
    recorded: int | None
    transfer_id: str | None = None
    interval_index: int | None = None


@dataclass
class Reconciliation:
    grant_id: int
    currency: str | None
    checked_transfers: int = 0
    checked_records: int = 0
    issues: list[Issue] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not self.issues


async def reconcile_grant(grant_id: str | int) -> Reconciliation:
    """Recompute a grant's spent amounts from its transfers and compare them with the recorded rows. Every
    difference is logged and counted in settlegraph_grant_spent_amount_issues_total; nothing is repaired."""
    grant = await find_grant(grant_id)
    if grant is None:
        raise DomainError(errors.NOT_FOUND, f"no grant {grant_id}", ["id"])
    report = Reconciliation(grant.id, grant.currency)
    if grant.limit_kind is None:
        return report  # nothing is tracked for a grant without limit
    transfers = await PreparedTransfer.filter(grant_id=grant.id).order_by("id")
    records = await GrantSpentAmount.filter(grant_id=grant.id).order_by("id")
    report.checked_transfers, report.checked_records = len(transfers), len(records)
    issues = report.issues

    # 1. Each transfer's latest row must agree with the transfer's own state and amounts.
    latest_of: dict[str, GrantSpentAmount] = {}
    for record in records:
        latest_of[record.transfer_id] = record
    expected_total = [0, 0]
    expected_period: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for transfer in transfers:
        debit, receive = contribution(transfer.state, transfer.amount, transfer.receive_amount,
                                      transfer.delivered_amount, transfer.sent_amount)
        expected_total[0] += debit
        expected_total[1] += receive
        if transfer.interval_index is not None:
            expected_period[transfer.interval_index][0] += debit
            expected_period[transfer.interval_index][1] += receive
        subject = f"transfer {transfer.transfer_id}"
        if transfer.transfer_id not in latest_of:
            issues.append(Issue(MISSING, subject, "record", None, None, transfer.transfer_id, transfer.interval_index))
            continue
        last = latest_of.pop(transfer.transfer_id)
        for name, want, have in (("transferDebit", debit, last.transfer_debit),
                                 ("transferReceive", receive, last.transfer_receive),
                                 ("intervalIndex", transfer.interval_index, last.interval_index)):
            if want != have:
                issues.append(Issue(MISMATCH, subject, name, want, have, transfer.transfer_id,
                                    transfer.interval_index))
        if last.state != transfer.state:
            issues.append(Issue(MISMATCH, subject, f"state {transfer.state} recorded as {last.state}", None, None,
                                transfer.transfer_id, transfer.interval_index))
    for transfer_id, orphan in latest_of.items():
        issues.append(Issue(MISMATCH, f"record {orphan.id}", "transfer unknown to the grant", None, None,
                            transfer_id, orphan.interval_index))

    # 2. The running sums of every row must continue the previous row of the grant and of its period.
    total = [0, 0]
    period_sums: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for record in records:
        total[0] += record.debit_change
        total[1] += record.receive_change
        subject = f"record {record.id}"
        for name, want, have in (("totalDebit", total[0], record.total_debit),
                                 ("totalReceive", total[1], record.total_receive)):
            if want != have:
                issues.append(Issue(MISMATCH, subject, name, want, have, record.transfer_id, record.interval_index))
                total = [record.total_debit, record.total_receive]  # report each break once, then follow it
        if record.interval_index is not None:
            sums = period_sums[record.interval_index]
            sums[0] += record.debit_change
            sums[1] += record.receive_change
            for name, want, have in (("intervalDebit", sums[0], record.interval_debit),
                                     ("intervalReceive", sums[1], record.interval_receive)):
                if want != have:
                    issues.append(Issue(MISMATCH, subject, name, want, have, record.transfer_id,
                                        record.interval_index))
                    sums[0], sums[1] = record.interval_debit or 0, record.interval_receive or 0

    # 3. The latest sums must equal what the transfers add up to, overall and per period.
    recorded_total = [records[-1].total_debit, records[-1].total_receive] if records else [0, 0]
    for name, want, have in (("totalDebit", expected_total[0], recorded_total[0]),
                             ("totalReceive", expected_total[1], recorded_total[1])):
        if want != have:
            issues.append(Issue(MISMATCH, "grant total", name, want, have))
    latest_period: dict[int, GrantSpentAmount] = {}
    for record in records:
        if record.interval_index is not None:
            latest_period[record.interval_index] = record
    for index in sorted(set(expected_period) | set(latest_period)):
        want_debit, want_receive = expected_period.get(index, [0, 0])
        newest = latest_period.get(index)
        have_debit = newest.interval_debit if newest else None
        have_receive = newest.interval_receive if newest else None
        for name, want, have in (("intervalDebit", want_debit, have_debit),
                                 ("intervalReceive", want_receive, have_receive)):
            if have is None:
                if want:
                    issues.append(Issue(MISSING, f"period {index}", name, want, None, interval_index=index))
            elif want != have:
                issues.append(Issue(MISMATCH, f"period {index}", name, want, have, interval_index=index))

    for issue in issues:
        metrics.GRANT_SPENT_AMOUNT_ISSUES.labels(kind=issue.kind.lower()).inc()
        log.error("grant spent amounts disagree with transfer history", extra={
            "grant_id": grant.id, "kind": issue.kind, "subject": issue.subject, "field": issue.field,
            "expected": issue.expected, "recorded": issue.recorded,
        })
    return report


async def reconcile(grant_id: str | int, caller: Principal | None) -> Reconciliation:
    """The reconcileGrant mutation: reconcile_grant, audited on the grant id with its outcome noted."""
    command = audit.Command(caller, "reconcileGrant", str(grant_id))

    async def check(conn: Any) -> Reconciliation:
        report = await reconcile_grant(grant_id)
        command.note(consistent=report.consistent, issues=len(report.issues))
        return report

    return await audit.run(command, check)


async def limited_grant_ids() -> list[int]:
    ids = await Grant.filter(limit_kind__isnull=False).order_by("id").values_list("id", flat=True)
    return [int(i) for i in ids]  # type: ignore[call-overload]
