"""User-facing failures.

Every failure a user can cause (bad flag, missing file, impossible config, corrupt checkpoint)
is raised as a :class:`MoelensError`. The CLI prints its message on one line and exits with
status 2; nothing else is printed, so the message must say what is wrong *and* what to do.
Library callers can catch the specific kinds below.
"""

from __future__ import annotations


class MoelensError(Exception):
    """A failure caused by the user's input; the message is shown as-is, on one line."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class ConfigError(MoelensError):
    """A config value, preset or flag is invalid or inconsistent."""


class DataError(MoelensError):
    """Input data is missing, empty or malformed."""


class CheckpointError(MoelensError):
    """A checkpoint or saved model cannot be read."""


class StoreError(MoelensError):
    """An activation store is missing, corrupt, or of an incompatible format."""


class UnsupportedModelError(MoelensError):
    """A model family has no adapter."""
