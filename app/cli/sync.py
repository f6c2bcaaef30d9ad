"""Placeholder registration; the commands of this area are added with it."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    return None
