"""The ticket crons: SLA warnings/breaches/escalations, assignment and the after-hours queue, silent closing."""

from __future__ import annotations

from app.tickets.assignment import assignment_tick
from app.tickets.closing import close_resolved_tick
from app.tickets.sla import sla_tick
from app.worker import register_job

#: seconds between runs: SLA moments are kept to the minute
SLA_EVERY = 60
ASSIGN_EVERY = 60
CLOSE_EVERY = 600

register_job(sla_tick, every_seconds=SLA_EVERY)
register_job(assignment_tick, every_seconds=ASSIGN_EVERY)
register_job(close_resolved_tick, every_seconds=CLOSE_EVERY)
