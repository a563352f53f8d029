"""`gongdan run`'s demo web chat site (issue 13): saved through the console's service, the simulator's origin allowed,
unchanged (no new audit row) on a restart, a new simulator origin added without losing what the console set."""

from __future__ import annotations

from app.channels.models import ChannelAccount
from app.channels.webchat import service as webchat
from app.security.models import AuditLog
from app.security.scope import SYSTEM
from app.seed import DEMO_SITE_KEY, DEMO_SITE_NAME, ensure_org, seed_webchat_site
from app.staff.models import SkillGroup

SIM = "http://127.0.0.1:8001"


async def test_the_demo_site_allows_the_simulators_origin(db: None) -> None:
    await ensure_org()
    site = await seed_webchat_site(origin=SIM + "/")
    assert (site.key, site.name, site.kind, site.active) == (DEMO_SITE_KEY, DEMO_SITE_NAME, "webchat", True)
    assert site.config["origins"] == [SIM] and site.config["bot"] is True
    assert site.config["group_id"] == (await SkillGroup.get(name="一线客服组")).id
    assert await AuditLog.filter(action="webchat_save", object_id=str(site.id)).count() == 1
    assert webchat.snippet(site, public_url="http://127.0.0.1:8000") == (
        '<script src="http://127.0.0.1:8000/static/webchat/widget.js" data-site="demo-shop" async></script>')


async def test_a_restart_changes_nothing_and_a_new_port_is_added(db: None) -> None:
    site = await seed_webchat_site(origin=SIM)
    # the admin tuned the site in the console meanwhile
    await webchat.save_site(actor=SYSTEM, body=webchat.WebchatSiteIn(
        key=DEMO_SITE_KEY, name="我的商城", origins=[SIM, "https://shop.example.com"], bot=False, per_visitor=5))
    again = await seed_webchat_site(origin=SIM)
    assert again.config == (await ChannelAccount.get(id=site.id)).config
    assert await AuditLog.filter(action="webchat_save").count() == 2
    moved = await seed_webchat_site(origin="http://127.0.0.1:9001")
    assert moved.id == site.id and moved.name == "我的商城"
    assert moved.config["origins"] == ["http://127.0.0.1:8001", "http://127.0.0.1:9001", "https://shop.example.com"]
    assert (moved.config["bot"], moved.config["per_visitor"]) == (False, 5)
    assert await ChannelAccount.filter(key=DEMO_SITE_KEY).count() == 1
