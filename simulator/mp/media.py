"""MP temporary media endpoints."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import UploadFile
from starlette.responses import Response
from starlette.routing import Route

from simulator.mp.api import MPCall, mp_route
from simulator.mp.errors import MPError
from simulator.mp.store import MEDIA_TYPES

__all__ = ["media_response", "routes"]

# 获取临时素材 https://developers.weixin.qq.com/doc/service/api/material/temporary/api_getmedia
MEDIA_GET_PATH = "media/get"
# 新增临时素材 https://developers.weixin.qq.com/doc/offiaccount/Asset_Management/New_temporary_materials.html
MEDIA_UPLOAD_PATH = "media/upload"


def media_response(content: bytes, content_type: str, filename: str) -> Response:
    """The binary answer with WeChat's headers."""
    return Response(
        content,
        media_type=content_type,
        headers={
            "Content-disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-cache, must-revalidate",
        },
    )


async def get_media(call: MPCall) -> Response | dict[str, Any]:
    """Binary with Content-disposition; videos come back as JSON ``video_url`` like the real API."""
    media_id = call.query("media_id", missing=41006)
    media = call.state.mp.get_media(call.appid, media_id)
    if media.media_type == "video":
        base = call.state.public_base_url or str(call.request.base_url).rstrip("/")
        return {"video_url": f"{base}/_sim/media/{media.media_id}"}
    return media_response(media.content, media.content_type, media.filename)


async def upload_media(call: MPCall) -> dict[str, Any]:
    """``POST media/upload?type=image`` with a multipart field ``media``."""
    media_type = call.query("type")
    if media_type not in MEDIA_TYPES:
        raise MPError(40004)
    try:
        form = await call.request.form()
    except Exception as exc:  # python-multipart raises several types on a malformed body
        raise MPError(41005, "media data missing") from exc
    upload = form.get("media")
    if not isinstance(upload, UploadFile):
        raise MPError(41005, "media data missing")
    content = await upload.read()
    await form.close()
    if not content:
        raise MPError(44001)
    content_type = upload.content_type or "application/octet-stream"
    media_id = call.state.mp.add_media(call.appid, content, content_type, upload.filename or "media", media_type)
    created_at = int(call.state.mp.get_media(call.appid, media_id).created_at)
    return {"type": media_type, "media_id": media_id, "created_at": created_at}


routes: list[Route] = [
    mp_route(MEDIA_GET_PATH, get_media, methods=["GET"]),
    mp_route(MEDIA_UPLOAD_PATH, upload_media, methods=["POST"]),
]
