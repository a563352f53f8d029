"""Per-deployment calibration of the bot's thresholds from the desk's own labelled questions, the thresholds in
force, and the report of precision and answered share over time.

Labels come from the desk: an agent confirming or correcting the bot's choice on the H5 ticket page, a customer
answering 解决了 / 没解决 after an answer, and a customer's pick from the bot's menu (the menu's best match was
right if it is the one picked). ``calibrate`` searches the (answer score, margin) pair that answers the largest
share of the labelled questions while precision among them stays at or above the target, separately for fused
and lexical scores; it stores the result only with enough labels. ``bot_config`` is the shipped configuration
with the newest stored thresholds in place of the defaults (explicit KB_* environment settings still win).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import numpy as np
from tortoise.exceptions import OperationalError

from app.kb.config import BotConfig, load_bot_config
from app.kb.models import BotCalibration, BotQuery, EmbeddingAdapter
from app.logs import get_logger
from app.timeutil import local, utcnow

log = get_logger(__name__)

TARGET = 0.90
#: labelled questions a kind of score needs before its thresholds are fitted
MIN_LABELLED = 30
#: answers the chosen thresholds must give on the labelled questions (a precision of 3 answers proves nothing)
MIN_ANSWERED = 10
#: how sure the precision must be: thresholds fitted with the point estimate at the target (900 labelled questions)
#: fell to 82% on held-out questions (bench/kb_eval.py --calibration), so the Wilson lower bound at one standard
#: deviation must reach the target instead; with too few labels nothing is stored and the shipped thresholds stay
CONFIDENCE_Z = 1.0
#: the bot's decisions (a menu pick, "chosen", is the customer's, not the bot's)
DECIDED = ("answered", "menu", "no_match")
_ENV = {True: ("KB_ANSWER_SCORE", "KB_ANSWER_MARGIN"), False: ("KB_LEXICAL_ANSWER_SCORE", "KB_LEXICAL_ANSWER_MARGIN")}


@dataclass(frozen=True)
class Fit:
    kind: str
    labelled: int
    answer_score: float | None = None
    answer_margin: float | None = None
    precision: float | None = None
    answered_share: float | None = None
    #: precision and answered share of the thresholds in force on the same labels
    current_precision: float | None = None
    current_share: float | None = None
    stored: bool = False
    #: why nothing was stored (Chinese, shown by the command)
    problem: str = ""


def lower_bound(hits: int, n: int, *, z: float = CONFIDENCE_Z) -> float:
    """Wilson score lower bound of a precision of hits/n (z standard deviations)."""
    if n == 0:
        return 0.0
    p = hits / n
    centre = p + z * z / (2 * n)
    spread = z * float(np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)))
    return (centre - spread) / (1 + z * z / n)


def choose(score: np.ndarray, margin: np.ndarray, right: np.ndarray, *, target: float = TARGET,
           min_answered: int = MIN_ANSWERED, z: float = CONFIDENCE_Z) -> tuple[float, float, float, float] | None:
    """(answer score, margin, precision, answered share) answering the most labelled questions while the precision
    among them, less its uncertainty (the Wilson lower bound at z), stays >= target; ties go to the higher
    precision, then the stricter thresholds. None when no pair reaches it."""
    best: tuple[float, float, float, float] | None = None
    for s in np.round(np.arange(0.0, 1.0001, 0.02), 2):
        for m in np.round(np.arange(0.0, 0.6001, 0.01), 2):
            answered = (score >= s) & (margin >= m)
            n = int(answered.sum())
            if n < min_answered:
                continue
            hits = int(right[answered].sum())
            precision = hits / n
            if lower_bound(hits, n, z=z) < target:
                continue
            share = n / len(score)
            key = (share, precision, s, m)
            if best is None or key > (best[3], best[2], best[0], best[1]):
                best = (float(s), float(m), precision, share)
    return best


async def _labelled(fused: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    query = BotQuery.filter(verdict__isnull=False, outcome__in=DECIDED, fused=fused)
    if fused:
        # fused scores depend on the adapter in use: only questions scored since the active one was adopted count
        adapter = await EmbeddingAdapter.filter(active=True).order_by("-id").first()
        if adapter is not None:
            query = query.filter(created_at__gte=adapter.created_at)
    rows = await query.values_list("score", "runner_up", "verdict")
    score = np.array([float(r[0]) for r in rows])
    margin = score - np.array([float(r[1]) for r in rows])
    right = np.array([r[2] == "right" for r in rows], dtype=bool)
    return score, margin, right


async def calibrate(*, target: float = TARGET, min_labelled: int = MIN_LABELLED, store: bool = True) -> list[Fit]:
    """Fit the fused and the lexical thresholds on the labelled questions; store (and use) those that qualify."""
    cfg = await bot_config()
    fits: list[Fit] = []
    for fused in (True, False):
        kind = "fused" if fused else "lexical"
        score, margin, right = await _labelled(fused)
        current = None
        if len(score):
            s, m = (cfg.answer_score, cfg.answer_margin) if fused else (cfg.lexical_answer_score,
                                                                        cfg.lexical_answer_margin)
            answered = (score >= s) & (margin >= m)
            current = (float(right[answered].mean()) if answered.any() else None, float(answered.mean()))
        base = Fit(kind=kind, labelled=len(score), current_precision=current[0] if current else None,
                   current_share=current[1] if current else None)
        if len(score) < min_labelled:
            fits.append(replace(base, problem=f"已标注的问题只有 {len(score)} 个，至少需要 {min_labelled} 个"))
            continue
        chosen = choose(score, margin, right, target=target)
        if chosen is None:
            fits.append(replace(base, problem=f"没有阈值能让准确率达到 {target:.0%}"))
            continue
        fit = replace(base, answer_score=chosen[0], answer_margin=chosen[1], precision=chosen[2],
                      answered_share=chosen[3])
        if store:
            await BotCalibration.filter(kind=kind, active=True).update(active=False)
            await BotCalibration.create(kind=kind, answer_score=chosen[0], answer_margin=chosen[1],
                                        precision=chosen[2], answered_share=chosen[3], labelled=len(score))
            fit = replace(fit, stored=True)
            log.info("kb.calibrated", kind=kind, labelled=len(score), precision=round(chosen[2], 3),
                     answered_share=round(chosen[3], 3))
        fits.append(fit)
    forget()
    return fits


_cached: dict[str, Any] = {"at": -1e9, "config": None, "base": None}
#: how long a process keeps the thresholds it read (another process may have calibrated meanwhile)
CACHE_SECONDS = 60.0


def forget() -> None:
    """Read the stored thresholds again at the next question."""
    _cached.update(at=-1e9, config=None, base=None)


async def bot_config() -> BotConfig:
    """The bot's configuration: the shipped one, with the newest stored calibration of each kind of score."""
    now = time.monotonic()
    base = load_bot_config()
    cfg: BotConfig | None = _cached["config"]
    # a new base (the environment was read again) invalidates the merge at once
    if cfg is not None and _cached["base"] is base and now - _cached["at"] < CACHE_SECONDS:
        return cfg
    cfg = base
    try:
        rows = await BotCalibration.filter(active=True).order_by("id")
    except OperationalError as exc:  # new code before its migration: the shipped thresholds
        log.warning("kb.calibration_unreadable", error=str(exc)[:200])
        rows = []
    for row in rows:
        fused = row.kind == "fused"
        if any(os.environ.get(name) for name in _ENV[fused]):
            continue  # an explicit setting is the operator's decision
        if fused:
            cfg = replace(cfg, answer_score=row.answer_score, answer_margin=row.answer_margin)
        else:
            cfg = replace(cfg, lexical_answer_score=row.answer_score, lexical_answer_margin=row.answer_margin)
    _cached.update(at=now, config=cfg, base=base)
    return cfg


async def report(*, days: int = 30) -> dict[str, Any]:
    """Per day (China time): questions the bot decided, the share it answered, the labelled answers and the
    precision among them; and every stored calibration."""
    days = max(1, min(days, 366))
    since = utcnow() - timedelta(days=days)
    rows = await BotQuery.filter(created_at__gte=since, outcome__in=DECIDED).values_list(
        "created_at", "outcome", "verdict")
    per_day: dict[str, dict[str, int]] = defaultdict(lambda: {"asked": 0, "answered": 0, "labelled": 0, "right": 0})
    for created, outcome, verdict in rows:
        day = per_day[local(created).date().isoformat()]
        day["asked"] += 1
        if outcome == "answered":
            day["answered"] += 1
            if verdict is not None:
                day["labelled"] += 1
                day["right"] += verdict == "right"
    series = [{"date": d, **v, "answered_share": round(v["answered"] / v["asked"], 4) if v["asked"] else None,
               "precision": round(v["right"] / v["labelled"], 4) if v["labelled"] else None}
              for d, v in sorted(per_day.items())]
    totals = {k: sum(v[k] for v in per_day.values()) for k in ("asked", "answered", "labelled", "right")}
    calibrations = [{"id": c.id, "kind": c.kind, "answer_score": c.answer_score, "answer_margin": c.answer_margin,
                     "precision": round(c.precision, 4), "answered_share": round(c.answered_share, 4),
                     "labelled": c.labelled, "active": c.active, "created_at": c.created_at.isoformat()}
                    for c in await BotCalibration.all().order_by("-id").limit(50)]
    return {"days": days, "target": TARGET, "series": series, "totals": {
        **totals, "answered_share": round(totals["answered"] / totals["asked"], 4) if totals["asked"] else None,
        "precision": round(totals["right"] / totals["labelled"], 4) if totals["labelled"] else None},
        "calibrations": calibrations}
