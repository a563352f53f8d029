"""Count the SQL statements tortoise sends (its db_client logger logs each one at DEBUG)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage().strip()
        if text:
            self.statements.append(text.split(":", 1)[0] if ": [" in text or ": (" in text else text)


@contextmanager
def count_statements() -> Iterator[list[str]]:
    """Collect every statement run inside the block (the list fills as they run)."""
    logger = logging.getLogger("tortoise.db_client")
    handler = _Counter()
    old_level, old_propagate = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield handler.statements
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate
