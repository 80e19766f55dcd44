"""Options the benchmarks share: the text is found (or downloaded) before anything is measured, and lists of
numbers are checked before anything trains; a wrong value is one usage line (status 2)."""

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


def _optional_local_text(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return None if value is None else _local_text(ctx, param, value)


def positive_numbers(kind: type, multiple_of: int = 1):
    """A callback for a comma-separated list of positive ``kind`` values (ints also multiples of ``multiple_of``)."""

    def parse(ctx: click.Context, param: click.Parameter, text: str) -> list:
        wrong = f"{text!r}: each comma-separated value must be a positive {kind.__name__}"
        wrong += f", a multiple of {multiple_of}" if multiple_of > 1 else ""
        try:
            values = [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise click.BadParameter(wrong) from None
        if not values or any(v <= 0 or (kind is int and v % multiple_of) for v in values):
            raise click.BadParameter(wrong)
        return values

    return parse


data_option = click.option(
    "--data",
    default=None,
    callback=_local_text,
    help="Training text, a file or an http(s) URL [default: The Verdict, downloaded once].",
)

val_data_option = click.option(
    "--val-data",
    default=None,
    callback=_optional_local_text,
    help="Validation text, a file or an http(s) URL [default: the last ~10% of --data].",
)
