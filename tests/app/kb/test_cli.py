"""`gongdan kb calibrate|train` and `gongdan assist train|index` are on the command line with their options."""

from __future__ import annotations

from app.cli import build_parser
from app.kb import cli


def test_kb_and_assist_commands_parse() -> None:
    parser = build_parser()
    args = parser.parse_args(["kb", "calibrate", "--target", "0.95", "--min-labelled", "50", "--dry-run"])
    assert (args.func, args.target, args.min_labelled, args.dry_run) == (cli.cmd_kb_calibrate, 0.95, 50, True)
    args = parser.parse_args(["kb", "train"])
    assert (args.func, args.dry_run) == (cli.cmd_kb_train, False)
    assert parser.parse_args(["assist", "train"]).func is cli.cmd_assist_train
    assert parser.parse_args(["assist", "index"]).func is cli.cmd_assist_index
