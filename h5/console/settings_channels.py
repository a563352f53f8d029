"""渠道与集成 · 公众号与微信客服: the channel accounts with their callback URL and the last callback that passed
verification, adding or changing an Official Account, registering a 微信客服 account.

Saving goes through ``app.channels.wechat_mp.service.save_account`` / ``app.channels.wecom_kf.service.save_account``
(their input models validate the form, ``upsert_account`` / ``ensure_account`` store it, an audit row is written).
A callback is stored only after its signature (and decryption) checked out, so the newest stored event of an account
is its last verified callback; whether the last callback *attempt* verified (or why it was refused, and how many were
refused in the last 24 h) comes from ``app.channels.health``, which notes every answer of the callback URLs.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.channels import health
from app.channels.models import ChannelAccount, InboundEvent
from app.channels.wechat_mp import accounts as mp_accounts
from app.channels.wechat_mp.service import MPAccountIn
from app.channels.wechat_mp.service import save_account as save_mp
from app.channels.wecom_kf.models import KfCursor
from app.channels.wecom_kf.service import KfAccountIn
from app.channels.wecom_kf.service import save_account as save_kf
from app.errors import NotFound, ValidationFailed
from app.labels import CHANNEL_LABELS
from h5.console.settings import manager, parse_form, require_admin, split_errors
from h5.console.web import console_page, flash, render_console
from h5.web import Ctx, redirect

__all__ = ["routes"]

BASE = "/console/settings/channels"
ADMIN_ONLY = "只有管理员可以管理渠道账号"
MP_LABELS = {"key": "标识", "name": "名称", "appid": "AppID", "secret": "AppSecret", "token": "令牌（Token）",
             "aes_key": "EncodingAESKey", "template_id": "模板消息 ID"}
KF_LABELS = {"open_kfid": "客服账号 ID", "name": "名称"}
EVENT_STATUS = {"pending": "待处理", "done": "已处理", "ignored": "已忽略", "failed": "处理失败"}


def _callback_url(ctx: Ctx, row: ChannelAccount) -> str:
    base = ctx.settings.public_url.rstrip("/")
    if row.kind == "wechat_mp":
        return f"{base}/callbacks/wechat/{row.key}"
    if row.kind in ("wecom_kf", "wecom_app"):
        return f"{base}/callbacks/wecom/app"  # kf events come through the self-built app's callback
    return ""


async def _rows(ctx: Ctx) -> list[dict[str, Any]]:
    rows = await ChannelAccount.all().order_by("kind", "id")
    kf_pulls = {c.open_kfid: c.updated_at for c in await KfCursor.filter(
        open_kfid__in=[r.key for r in rows if r.kind == "wecom_kf"])}
    scopes = {r.id: health.scope_of_account(kind=r.kind, key=r.key) for r in rows}
    checks = await health.list_status(scopes=[s for s in scopes.values() if s])
    out = []
    for row in rows:
        last = await InboundEvent.filter(channel_account_id=row.id).order_by("-id").first()
        out.append({
            "row": row, "kind_label": CHANNEL_LABELS.get(row.kind, row.kind),
            "ident": (row.config or {}).get("appid") or (row.config or {}).get("open_kfid")
            or (row.config or {}).get("address") or "",
            "callback_url": _callback_url(ctx, row),
            "last_at": last.received_at if last else None,
            "last_status": EVENT_STATUS.get(last.status, last.status) if last else "",
            "pulled_at": kf_pulls.get(row.key),
            "check": checks.get(scopes[row.id] or ""),
            "editable": row.kind == "wechat_mp",
        })
    return out


@console_page
async def channels_page(request: Request, ctx: Ctx) -> Response:
    """Every channel account with its callback URL and last verified callback."""
    return render_console(request, ctx, "console/settings/channels.html", active="settings.channels",
                          rows=await _rows(ctx), can_edit=manager(ctx).is_admin)


async def _mp_form(request: Request, ctx: Ctx, *, key: str | None, values: dict[str, Any],
                   errors: dict[str, str] | None = None, general: list[str] | None = None,
                   status: int = 200) -> Response:
    title = "添加公众号" if key is None else f"修改公众号 · {key}"
    return render_console(request, ctx, "console/settings/channel_mp.html", active="settings.channels",
                          title=title, breadcrumb=[("渠道与集成", None), ("公众号与微信客服", BASE), (title, None)],
                          key=key, values=values, errors=errors or {}, general=general or [], status=status,
                          callback_base=f"{ctx.settings.public_url.rstrip('/')}/callbacks/wechat/")


@console_page
async def mp_edit(request: Request, ctx: Ctx) -> Response:
    """Add an Official Account (``/mp/new``) or change one; secrets left empty keep the stored ones."""
    require_admin(ctx, ADMIN_ONLY)
    key = request.path_params.get("key")
    row = None
    if key is not None:
        row = await ChannelAccount.get_or_none(key=key, kind=mp_accounts.KIND)
        if row is None:
            raise NotFound("公众号不存在。")
    if request.method == "GET":
        values = {"key": row.key, "name": row.name, "appid": (row.config or {}).get("appid", ""),
                  "template_id": (row.config or {}).get("template_id", "")} if row else dict.fromkeys(MP_LABELS, "")
        return await _mp_form(request, ctx, key=key, values=values)
    data = {name: ctx.field(name) for name in MP_LABELS}
    if row is not None:
        data["key"] = row.key  # the key is the callback URL: it does not change
    shown = {k: v for k, v in data.items() if k not in ("secret", "token", "aes_key")}
    try:
        account = await save_mp(actor=manager(ctx), body=parse_form(MPAccountIn, data, MP_LABELS))
    except ValidationFailed as exc:
        errors, general = split_errors(exc, lambda f: f if f in MP_LABELS else None)
        return await _mp_form(request, ctx, key=key, values=shown, errors=errors, general=general, status=422)
    flash(ctx, f"公众号「{account.name}」已保存，回调地址：{_callback_url(ctx, account)}")
    return redirect(BASE)


@console_page
async def kf_new(request: Request, ctx: Ctx) -> Response:
    """Register a 微信客服 account by its open_kfid."""
    require_admin(ctx, ADMIN_ONLY)
    values: dict[str, Any] = dict.fromkeys(KF_LABELS, "")
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "POST":
        values = {name: ctx.field(name) for name in KF_LABELS}
        try:
            account = await save_kf(actor=manager(ctx), body=parse_form(KfAccountIn, values, KF_LABELS))
        except ValidationFailed as exc:
            errors, general = split_errors(exc, lambda f: f if f in KF_LABELS else None)
        else:
            flash(ctx, f"微信客服账号「{account.name}」已保存")
            return redirect(BASE)
    return render_console(request, ctx, "console/settings/channel_kf.html", active="settings.channels",
                          title="添加微信客服账号",
                          breadcrumb=[("渠道与集成", None), ("公众号与微信客服", BASE), ("添加微信客服账号", None)],
                          values=values, errors=errors, general=general, status=422 if errors or general else 200,
                          callback_url=f"{ctx.settings.public_url.rstrip('/')}/callbacks/wecom/app")


routes: list[BaseRoute] = [
    Route("/settings/channels", channels_page, methods=["GET"]),
    Route("/settings/channels/mp/new", mp_edit, methods=["GET", "POST"]),
    Route("/settings/channels/mp/{key}", mp_edit, methods=["GET", "POST"]),
    Route("/settings/channels/kf/new", kf_new, methods=["GET", "POST"]),
]
