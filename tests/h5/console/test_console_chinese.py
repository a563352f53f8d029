"""Every shell and settings page reads in Chinese: no identifiers or English words in what a person sees (the issue
10 scanner), apart from data that is English by nature (WeCom userids, AppIDs, YAML keys shown as code)."""

from __future__ import annotations

import re
from pathlib import Path

from app.seed import seed_demo
from app.tickets import sla_config
from app.tickets.models import BusinessCalendar, SlaPolicy
from tests.h5.console.conftest import ADMIN, Console
from tests.untranslated import leaks, visible_text

DEMO_SLA = Path(__file__).resolve().parents[3] / "app" / "tickets" / "demo_sla.yaml"
PAGES = ["/console/", "/console/settings/rules", "/console/settings/rules/1", "/console/settings/rules/new",
         "/console/settings/rules?dry=1&text=发票", "/console/settings/channels", "/console/settings/channels/mp/new",
         "/console/settings/channels/kf/new", "/console/settings/staff", "/console/settings/groups",
         "/console/settings/groups/new", "/console/settings/sla", "/console/settings/sla/new",
         "/console/settings/calendars", "/console/settings/calendars/new", "/console/settings/calendars/notice",
         "/console/settings/kb", "/console/settings/kb/new", "/console/settings/canned",
         "/console/settings/canned/new", "/console/settings/approvals"]


async def test_settings_pages_have_no_untranslated_text(console: Console) -> None:
    await seed_demo()
    await sla_config.store(document=sla_config.parse_yaml(DEMO_SLA.read_text(encoding="utf-8")))
    admin = await console.login(ADMIN)
    people = console.h5.people
    extra = [f"/console/settings/staff/{people['lina'].id}",
             f"/console/settings/sla/{(await SlaPolicy.first()).id}",  # type: ignore[union-attr]
             f"/console/settings/calendars/{(await BusinessCalendar.first()).id}"]  # type: ignore[union-attr]
    data_words = {p.userid for p in people.values()}
    found: dict[str, list[str]] = {}
    for path in PAGES + extra:
        r = await admin.get(path)
        assert r.status_code == 200, (path, r.status_code)
        # auto-reply placeholders ({next_open}, {group}) are the syntax people type, shown as such
        text = re.sub(r"\{[a-z_]+\}", " ", visible_text(r.text))
        words = [w for w in leaks(text) if w not in data_words]
        if words:
            found[path] = words
    assert found == {}, sorted(found.items())
    login = await console.client().get("/console/login")
    assert [w for w in leaks(visible_text(login.text)) if w not in data_words] == []
