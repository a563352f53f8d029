"""WeChat Customer Service (微信客服, "kf"): the callback only announces, messages are pulled with kf/sync_msg.

Follows https://developer.work.weixin.qq.com/document/path/94670 (接收消息和事件), path/94677 (发送消息),
path/94669 and path/94698 (会话状态) and path/94661 (客服账号列表):

* ``sync.py``: the ``kf_msg_or_event`` handler and the token-less recovery cron pull ``kf/sync_msg`` per open_kfid
  under a lease, save ``next_cursor`` after every page and skip msgids already seen;
* ``inbound.py``: a pulled item -> ``InboundMessage`` (pure);
* ``outbound.py``: the ``wecom_kf`` adapter (``kf/send_msg`` with msgid = the outbox id, menus as ``msgmenu``,
  the 5-messages-in-48-hours rule known before the call) and session-state rows;
* ``state.py``: WeCom's session state kept in step with ours (bot 1, queue 2, servicer 3, ended 4).
"""
