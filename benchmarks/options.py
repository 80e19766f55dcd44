"""The ``--data`` option the benchmarks share: the text is found (or downloaded) before anything is measured."""

from __future__ import annotations

import click

from gpt.corpus import load_source
from gpt.errors import UserError


def _local_text(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    """A missing, unreadable or unreachable text is one usage line (status 2), not a traceback mid-run."""
    try:
        return str(load_source(value).path)
    except UserError as exc:
        raise click.BadParameter(str(exc)) from None


data_option = click.option(
    "--data",
    default=None,
    callback=_local_text,
    help="Training text, a file or an http(s) URL [default: The Verdict, downloaded once].",
)
