"""The web chat channel: an embeddable widget on the customer's own site, live over a WebSocket.

Sites are channel accounts (kind "webchat", key = the site key, config: allowed origins, name, bot). The widget
(``static/webchat/widget.js``) connects to ``/webchat/ws?site=KEY`` (``endpoint``); every visitor message goes
through ``app.intake.receive`` like any other channel. Staff replies leave through the outbox and the
``outbound.WebchatAdapter``, which publishes them on the ``hub`` (Redis pub/sub when REDIS_URL is set, so any web
process holding the visitor's socket delivers them; in-process otherwise). A reconnecting widget re-syncs the
stored messages after the last id it saw. Visitors are identified by a server-signed visitor id (itsdangerous,
SECRET_KEY) kept in the browser's localStorage; one who proves an e-mail address with a code (``verify``) becomes
the customer who holds it. The staff side (the H5 ticket page) sees the visitor typing, their read state and new
messages, and shows them staff typing and 已读 (``live``), through the same hub.
"""
