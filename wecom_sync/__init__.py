"""WeCom directory and external-contact sync: ``directory`` (departments, staff, tags), ``external`` (external
contacts as customer identities), ``jobs`` (event processors, full-sync and nightly reconcile jobs), ``cli``
(``gongdan sync directory|external-contacts``), ``scope`` (who may see external-contact customers)."""

from __future__ import annotations
