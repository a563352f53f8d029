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

# WeCom: the app callback's dispatch map, the contacts callback, staff cards, directory/external-contact sync
from app.channels.wecom_app import handlers as wecom_app_handlers  # noqa: E402
from app.channels.wecom_app.outbound import WeComAppAdapter  # noqa: E402
from wecom_sync import jobs as wecom_sync_jobs  # noqa: E402
from wecom_sync import scope as _external_contact_scope  # noqa: E402, F401  (registers the customer scope)

register_adapter(WeComAppAdapter())
inbound_jobs.register_processor("wecom_app", wecom_app_handlers.process)
inbound_jobs.register_processor("wecom_contacts", wecom_sync_jobs.process_contacts_event)
wecom_app_handlers.register_wecom_app_handler("change_external_contact", wecom_sync_jobs.on_change_external_contact)
register_job(wecom_sync_jobs.wecom_full_sync)
register_job(wecom_sync_jobs.wecom_reconcile, every_seconds=3600)

# WeChat Customer Service (微信客服): pull on kf_msg_or_event, the wecom_kf adapter, the recovery cron
from app.channels.wecom_kf import sync as wecom_kf_sync  # noqa: E402
from app.channels.wecom_kf.outbound import WeComKfAdapter  # noqa: E402

register_adapter(WeComKfAdapter())
wecom_kf_sync.register()
