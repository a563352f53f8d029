"""The H5 workbench: mobile pages for staff inside WeCom and for customers inside WeChat.

* ``session``: the signed, HttpOnly session cookie (login rotates the session id);
* ``csrf``: synchronizer tokens bound to the session id, checked on every POST;
* ``platform``: OAuth2 code exchanges (MP snsapi_base, WeCom auth/getuserinfo) and cached JS-SDK tickets;
* ``jssdk``: ``wx.config`` / ``wx.agentConfig`` signatures;
* ``auth``: login and logout pages, including the development login of ``make run``;
* ``staff_pages`` / ``customer_pages``: the pages; ``routes``: what ``app.main`` mounts.
"""

from __future__ import annotations
