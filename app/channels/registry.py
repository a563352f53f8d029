"""Installs every channel adapter and the jobs channels bring (imported once by app.worker.load_jobs)."""

from __future__ import annotations

from app.channels import inbound_jobs  # noqa: F401  (registers process_inbound_event)
