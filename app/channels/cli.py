"""`gongdan channel ...` commands."""

from __future__ import annotations

import argparse


def add_channel_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the channel subcommands."""
    return None
