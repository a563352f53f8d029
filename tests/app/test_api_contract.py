"""The API keeps its OpenAPI contract: a bounded, derandomized Schemathesis run over every /api/v1 operation.

Every operation gets valid (positive) and invalid (negative) requests, sent with an admin's or an agent's token, on
a seeded SQLite database, through the ASGI app in process. A failure is any 5xx, or an answer whose status,
content type or body the document does not describe. Failures are collected (no shrinking) and listed together.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Ok
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tortoise import Tortoise

from app.db import tortoise_config
from app.main import create_app
from app.settings import Settings, set_settings
from tests import factories
from tests.conftest import _forget_dialect, make_settings

#: examples per operation and mode: 50 operations x (30 + 15) = 2,250 requests (about 35 s on the 2-core machine)
EXAMPLES = {GenerationMode.POSITIVE: 30, GenerationMode.NEGATIVE: 15}
#: the bound on the sending (a loaded machine may need it); past it the remaining examples are skipped, and counted
BUDGET_SECONDS = 50.0
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]



# reads SQLite's own catalogue / a seeded SQLite file
pytestmark = pytest.mark.sqlite_only

async def _seed(settings: Settings) -> dict[str, str]:
    """An org, customers, tickets with messages, an article; returns the admin's and an agent's tokens."""
    from app import intake
    from app.kb import service as kb
    from app.security.scope import actor_for
    from app.tickets import service as tickets

    _forget_dialect()  # an earlier test of this process may have used MariaDB (tortoise caches SQL per dialect)
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)
    try:
        await Tortoise.generate_schemas()
        data = await factories.org()
        people = data["people"]
        admin = await actor_for(people["admin"])
        for n in range(1, 4):
            customer = await factories.customer(name=f"客户{n}", phone=f"1381234567{n}")
            ticket = await intake.staff_ticket(
                actor=admin, customer=customer, subject=f"退款问题{n}", description="订单未到账", priority=None,
                order_no=None, phone=None, category="", tags=[], custom_fields={},
                group_id=data["groups"]["service"].id, assignee_id=people["agent"].id, assign_to_self=False,
                source="api")
            await tickets.add_note(actor=admin, ticket_id=ticket.id, text="内部备注")
        await kb.create(actor=admin, title="如何退款", body="在订单页申请退款。", questions=["怎么退款"], tags=[],
                        category="售后", owner_id=None, status="published")
        return {"admin": await factories.token(people["admin"]), "agent": await factories.token(people["agent"])}
    finally:
        await Tortoise.close_connections()


def test_every_operation_keeps_the_documented_contract(tmp_path: Path) -> None:
    settings = make_settings(data_dir=tmp_path / "data", database_url=f"sqlite://{tmp_path}/contract.sqlite3",
                             log_level="WARNING")
    stats: dict[str, int] = {"requests": 0, "5xx": 0, "skipped": 0}
    statuses: dict[int, int] = {}
    failures: dict[str, str] = {}
    operations: list[Any] = []  # schemathesis APIOperation
    set_settings(settings)
    try:
        tokens = asyncio.run(_seed(settings))
        app = create_app(settings, run_jobs=False)
        schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result  # the document loads: every operation is well-formed
            operations.append(result.ok())
        deadline = time.monotonic() + BUDGET_SECONDS
        # one client, so one lifespan (the app's database) for every request
        with asgi.get_client(app) as client:  # type: ignore[arg-type]
            for operation in operations:
                for mode, count in EXAMPLES.items():
                    if time.monotonic() > deadline:
                        stats["skipped"] += count
                        continue
                    _run(operation, mode, count, client=client, tokens=tokens, deadline=deadline, stats=stats,
                         statuses=statuses, failures=failures)
    finally:
        asgi.shutdown_lifespans()
        set_settings(None)
    print(f"\nschemathesis: {len(operations)} operations, {stats['requests']} requests, {stats['5xx']} 5xx, "
          f"{stats['skipped']} skipped past the time bound, {len(failures)} distinct failures; by status: "
          f"{dict(sorted(statuses.items()))}")
    assert failures == {}, "\n\n".join(failures.values())
    assert len(operations) >= 52  # every mounted operation but the document itself, which Schemathesis skips
    assert stats["requests"] >= (2000 if not stats["skipped"] else 1000)


def _run(operation: Any, mode: GenerationMode, count: int, *, client: Any, tokens: dict[str, str],
         deadline: float, stats: dict[str, int], statuses: dict[int, int], failures: dict[str, str]) -> None:
    """Send ``count`` generated requests to one operation, recording failures (first one per kind)."""

    @hsettings(max_examples=count, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
               suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode), who=st.sampled_from(sorted(tokens)))
    def send(case: Any, who: str) -> None:  # schemathesis Case
        if time.monotonic() > deadline:
            stats["skipped"] += 1
            return
        stats["requests"] += 1
        try:
            response = case.call(session=client, headers={"Authorization": f"Bearer {tokens[who]}"})
        except Exception as exc:  # starlette re-raises what crashed a request after answering 500
            stats["5xx"] += 1
            key = f"{operation.label} [{mode.value}] 500 {type(exc).__name__}"
            failures.setdefault(key, f"{key}: {str(exc)[:300]}\n  as {who}: {case.as_curl_command()}")
            return
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            stats["5xx"] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (Failure, FailureGroup) as exc:  # keep the first example of each kind of failure
            for failure in exc.exceptions if isinstance(exc, FailureGroup) else [exc]:
                key = f"{operation.label} [{mode.value}] {response.status_code} {failure.title}"
                failures.setdefault(key, f"{key}: {failure.message[:300]}\n  as {who}: {case.as_curl_command()}"
                                         f"\n  -> {response.text[:300]}")

    send()
