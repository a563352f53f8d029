"""The manager's console at ``/console``: desktop pages for admins and leads (agents see their own figures).

A sub-package of the page package: it reuses ``h5.web`` (session, CSRF, CSP nonce, templates) and the staff login,
with its own layout (side navigation, tables with filters) in ``h5/templates/console/`` and ``static/console/``.
How to add a page: /work/notes/console-shell.md (short version in ``h5.console.web``'s docstring).
"""
