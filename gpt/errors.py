"""Errors the CLI says in one line: a user's (status 2) and the machine's (status 1)."""


class UserError(Exception):
    """Bad input: a wrong value, a missing file, unusable data or an unreachable server."""


class ConfigError(UserError, ValueError):
    """A configuration value outside its allowed range."""


class DataError(UserError):
    """Training text that cannot be read, fetched or split into windows."""


class MachineFault(Exception):
    """A fault of the machine, not of the input (a full disk): one line, and exit status 1."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training cannot recover from that."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:limit]
