"""`gongdan kb calibrate` (the bot's thresholds from the desk's labelled answers), `gongdan kb train` (an adapter
on the sentence model from the desk's confirmed pairs) and `gongdan assist train|index` (ticket assistance)."""

from __future__ import annotations

import argparse
import os
from typing import Any


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def cmd_kb_calibrate(args: argparse.Namespace) -> None:
    from app.cli import _settings, _with_db
    from app.kb import calibration

    async def run() -> list[calibration.Fit]:
        return await calibration.calibrate(target=args.target, min_labelled=args.min_labelled,
                                           store=not args.dry_run)

    for fit in _with_db(_settings(), run):
        print(f"[{fit.kind}] 已标注 {fit.labelled} 个问题；现行阈值：准确率 {_pct(fit.current_precision)}，"
              f"直接回答 {_pct(fit.current_share)}")
        if fit.problem:
            print(f"  未校准：{fit.problem}")
            continue
        print(f"  新阈值：分数 >= {fit.answer_score:.2f} 且领先 >= {fit.answer_margin:.2f}；准确率 "
              f"{_pct(fit.precision)}，直接回答 {_pct(fit.answered_share)}"
              + ("（已保存并生效）" if fit.stored else "（未保存：--dry-run）"))


def cmd_kb_train(args: argparse.Namespace) -> None:
    from app.cli import _settings, _with_db
    from app.kb import adapter

    os.environ.setdefault("OMP_NUM_THREADS", "1")

    async def run() -> adapter.TrainReport:
        return await adapter.train(store=not args.dry_run)

    report = _with_db(_settings(), run)
    if report.problem:
        print(f"未训练：{report.problem}")
        return
    verdict = "保留并启用" if report.kept else "未超过现有模型，不启用"
    print(f"训练问答对 {report.pairs} 个，留出 {report.held_out} 个；留出集 top-1：原模型 {report.before:.1%}，"
          f"加适配器 {report.after:.1%}：{verdict}")


def cmd_assist_train(args: argparse.Namespace) -> None:
    from app.assist import service
    from app.cli import _settings, _with_db

    os.environ.setdefault("OMP_NUM_THREADS", "1")

    async def run() -> list[service.TrainReport]:
        await service.embed_tickets(limit=args.embed_limit)
        return [await service.train(kind=kind) for kind in ("category", "priority")]

    for r in _with_db(_settings(), run):
        if r.model_id is None:
            print(f"[{r.kind}] 已关闭工单 {r.trained_on} 张，不足以训练")
            continue
        print(f"[{r.kind}] 训练 {r.trained_on} 张，留出最新 {r.held_out} 张：准确率 {r.accuracy:.1%}，基线 "
              f"{r.baseline_accuracy:.1%}：" + ("启用" if r.active else "不如基线，不启用"))


def cmd_assist_index(args: argparse.Namespace) -> None:
    from app.assist import service
    from app.cli import _settings, _with_db

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    size = _with_db(_settings(), service.build_index)
    print(f"已重建相似工单索引：{size} 张" if size else "索引无需重建")


def add_kb_commands(sub: Any) -> None:
    """Register `kb` and `assist` on the gongdan parser."""
    p = sub.add_parser("kb", help="knowledge base: calibrate the bot, train an adapter on the desk's data")
    ksub = p.add_subparsers(dest="kb_command", required=True)
    kp = ksub.add_parser("calibrate", help="fit the bot's thresholds on the desk's labelled answers")
    kp.add_argument("--target", type=float, default=0.90, help="precision among answered questions")
    kp.add_argument("--min-labelled", type=int, default=30, help="labelled questions needed per kind of score")
    kp.add_argument("--dry-run", action="store_true", help="report only, store nothing")
    kp.set_defaults(func=cmd_kb_calibrate)
    kp = ksub.add_parser("train", help="fit an adapter on confirmed pairs; kept only if it beats the model")
    kp.add_argument("--dry-run", action="store_true", help="report only, store nothing")
    kp.set_defaults(func=cmd_kb_train)

    p = sub.add_parser("assist", help="ticket assistance: classifiers and the similar-ticket index")
    asub = p.add_subparsers(dest="assist_command", required=True)
    ap = asub.add_parser("train", help="embed changed tickets, then refit the category and priority classifiers")
    ap.add_argument("--embed-limit", type=int, default=5000, help="tickets embedded before training")
    ap.set_defaults(func=cmd_assist_train)
    ap = asub.add_parser("index", help="rebuild the similar-ticket index now")
    ap.set_defaults(func=cmd_assist_index)
