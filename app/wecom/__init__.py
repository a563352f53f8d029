"""The one place that knows WeChat (MP) and WeCom credentials, callback crypto and API clients.

* ``callback``: verify, decrypt and parse pushes (pure CPU, safe on the request path);
* ``tokens``: access tokens shared across processes, refreshed by one process at a time;
* ``clients``: wechatpy clients pointed at settings, with a single token retry and our error mapping;
* ``mp``: the async Official Account façade the channel code calls;
* ``errors``: platform errcodes mapped onto ``app.errors`` channel errors.

Official docs: MP https://developers.weixin.qq.com/doc/offiaccount/Getting_Started/Overview.html,
WeCom https://developer.work.weixin.qq.com/document/path/90664.
"""

from __future__ import annotations
