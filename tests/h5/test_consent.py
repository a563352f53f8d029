"""The customer H5 pages ask for consent before collecting a phone number or photos, and record it (issue 11)."""

from __future__ import annotations

from app.conversations.models import Message
from app.customers import service as customers
from app.security.consent import CONSENT_REQUIRED, CONSENT_TEXT, CONSENT_VERSION, has_consent
from app.security.models import ConsentRecord
from app.security.scope import SYSTEM
from app.tickets import service as tickets
from app.tickets.models import Ticket
from tests.h5.conftest import H5, csrf_of
from tests.h5.test_customer_pages import PNG


async def _new(h5: H5, **data: str) -> tuple[int, str]:
    page = await h5.client.get("/h5/my/new")
    files = {"photos": ("receipt.png", PNG, "image/png")} if data.pop("photo", "") else None
    r = await h5.client.post("/h5/my/new", data={"csrf_token": csrf_of(page.text), **data}, files=files)
    return r.status_code, r.text


async def test_the_form_shows_the_consent_checkbox_and_its_text(h5: H5) -> None:
    await h5.login_customer("oConsent")
    html = (await h5.client.get("/h5/my/new")).text
    assert 'type="checkbox" name="consent" value="1"' in html and CONSENT_TEXT in html


async def test_a_phone_without_consent_is_refused_and_nothing_is_stored(h5: H5) -> None:
    await h5.login_customer("oConsent")
    status, html = await _new(h5, description="热水器坏了", phone="13812345678")
    assert status == 422 and CONSENT_REQUIRED in html
    assert await Ticket.all().count() == 0 and await ConsentRecord.all().count() == 0


async def test_photos_without_consent_are_refused_and_no_file_is_written(h5: H5) -> None:
    await h5.login_customer("oConsent")
    status, html = await _new(h5, description="热水器坏了", photo="1")
    assert status == 422 and CONSENT_REQUIRED in html
    assert await Ticket.all().count() == 0
    assert not h5.settings.media_dir.exists() or not any(h5.settings.media_dir.rglob("*.png"))


async def test_no_phone_and_no_photos_need_no_consent(h5: H5) -> None:
    await h5.login_customer("oConsent")
    status, _ = await _new(h5, description="热水器坏了")
    assert status == 303
    assert await Ticket.all().count() == 1 and await ConsentRecord.all().count() == 0


async def test_consent_is_recorded_with_what_when_and_the_text_version(h5: H5) -> None:
    await h5.login_customer("oConsent")
    status, _ = await _new(h5, description="热水器坏了", phone="13812345678", photo="1", consent="1")
    assert status == 303
    ticket = await Ticket.get()
    rows = await ConsentRecord.filter(customer_id=ticket.customer_id).order_by("id").values(  # type: ignore
        "purpose", "text_version", "source", "created_at")
    assert [(r["purpose"], r["text_version"], r["source"]) for r in rows] == [
        ("phone", CONSENT_VERSION, "customer_h5"), ("photos", CONSENT_VERSION, "customer_h5")]
    assert all(r["created_at"] is not None for r in rows)
    assert await has_consent(customer_id=ticket.customer_id, purpose="phone")  # type: ignore[attr-defined]
    assert ticket.phone_enc is not None


async def test_photos_on_a_message_need_consent_too(h5: H5) -> None:
    customer = await customers.resolve_identity(kind="mp_openid", scope="default", value="oConsent", name="客户")
    ticket = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="门锁坏了")
    await h5.login_customer("oConsent")
    page = await h5.client.get(f"/h5/my/tickets/{ticket.number}")
    assert CONSENT_TEXT in page.text
    r = await h5.client.post(f"/h5/my/tickets/{ticket.number}/message",
                             data={"csrf_token": csrf_of(page.text), "text": "照片"},
                             files={"photos": ("lock.png", PNG, "image/png")})
    assert r.status_code == 422 and CONSENT_REQUIRED in r.text
    assert await Message.filter(ticket_id=ticket.id).count() == 0
    r = await h5.client.post(f"/h5/my/tickets/{ticket.number}/message",
                             data={"csrf_token": csrf_of(page.text), "text": "照片", "consent": "1"},
                             files={"photos": ("lock.png", PNG, "image/png")})
    assert r.status_code == 303
    purposes = await ConsentRecord.filter(customer_id=customer.id).values_list("purpose", flat=True)
    assert [str(p) for p in purposes] == ["photos"]
    # a text-only message needs none
    r = await h5.client.post(f"/h5/my/tickets/{ticket.number}/message",
                             data={"csrf_token": csrf_of(page.text), "text": "谢谢"})
    assert r.status_code == 303


async def test_the_customer_sees_their_own_phone_masked(h5: H5) -> None:
    await h5.login_customer("oConsent")
    status, _ = await _new(h5, subject="回电 13812345678", description="邮箱 wang@example.com", consent="1")
    assert status == 303
    ticket = await Ticket.get()
    assert "13812345678" not in ticket.subject
    html = (await h5.client.get(f"/h5/my/tickets/{ticket.number}")).text
    assert "回电 138****5678" in html and "⟦" not in html
    listing = (await h5.client.get("/h5/my/tickets")).text
    assert "回电 138****5678" in listing and "⟦" not in listing
