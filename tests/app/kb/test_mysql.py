"""The knowledge base on MariaDB (needs the lead's migration for the kb_* and kf_* tables)."""

from __future__ import annotations

import pytest

from app.kb import service as kb
from app.kb import understanding
from app.kb.models import ArticleVersion
from app.security.scope import SYSTEM

pytestmark = pytest.mark.mysql


async def test_articles_versions_and_search_on_mariadb(mysql_db: None) -> None:
    a = await kb.create(actor=SYSTEM, title="如何申请退款", questions=["怎么退钱"], status="published")
    await kb.update(actor=SYSTEM, article_id=a.id, expected_version=1, changes={"body": "原路退回"})
    assert await ArticleVersion.filter(article_id=a.id).count() == 2
    kb._cache.update(key=None, matcher=None)
    understanding.reset()
    assert [r.article.id for r in await kb.search(query="退钱", k=1)] == [a.id]
