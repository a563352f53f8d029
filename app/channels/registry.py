"""Installs every channel adapter and the jobs channels bring (imported once by app.worker.load_jobs)."""

from __future__ import annotations

from app.channels import inbound_jobs
from app.channels.base import register_adapter
from app.channels.wechat_mp import inbound as mp_inbound
from app.channels.wechat_mp import jobs as mp_jobs
from app.channels.wechat_mp.outbound import WeChatMPAdapter
from app.worker import register_job

register_adapter(WeChatMPAdapter())
inbound_jobs.register_processor("wechat_mp", mp_inbound.process)
register_job(mp_jobs.sync_mp_user)
register_job(mp_jobs.download_mp_media)
