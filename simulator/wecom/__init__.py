"""The WeCom (企业微信) side of the simulator: one corp with its apps, directory, external contacts and messages.

``store`` holds the state (``SimulatorState.wecom``), ``api.wecom_route`` mounts an endpoint under
``/qyapi/cgi-bin/``, ``routes.wecom_routes`` collects every module's ``routes``, ``orggen`` builds an organisation of
any size, and ``driver.WeComDriver`` sends encrypted callbacks (change_contact, change_external_contact, or any app
event such as kf_msg_or_event and sys_approval_change) to the desk.
"""

from __future__ import annotations
