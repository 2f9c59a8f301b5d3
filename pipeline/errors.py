"""The one error hierarchy. `main` catches `MixwrightError` once; anything else is a bug.

- `ConfigError`: a setting or a file it names cannot work. Raised before any work; exit code 2.
- `PhaseFailed`: a phase's tasks did not all complete (or stalled). Exit code 1, with the log path.
"""

from __future__ import annotations


class MixwrightError(Exception):
    """An error the user can act on; the CLI prints it without a traceback."""

    exit_code = 1


class ConfigError(MixwrightError):
    """A problem the user can fix in the config or the command line (exit code 2)."""

    exit_code = 2


class PhaseFailed(MixwrightError):
    """Some tasks of a phase did not complete; their logs say why (exit code 1)."""
