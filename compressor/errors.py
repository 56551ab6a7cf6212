"""Expected failures and the exit codes the CLI maps them to.

Every error a user can cause or a gate can raise is a ``CompressError``; its ``exit_code`` is the CLI
contract (1 gate failed, 2 bad usage or bad input, 3 run-time failure). Anything else is a bug and
surfaces as a traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_GATE = 1
EXIT_BAD_INPUT = 2
EXIT_RUNTIME = 3


class CompressError(Exception):
    """Base of every expected error. The message is one line that names the file, field or value."""

    exit_code: int = EXIT_RUNTIME

    def __init__(self, message: str, *, report: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        # A stage that ran but failed a check still has a report worth printing with --json.
        self.report = report


class BadInputError(CompressError):
    """Bad usage or bad input: missing path, wrong model type, malformed data, bad config."""

    exit_code = EXIT_BAD_INPUT


class GateFailedError(CompressError):
    """The work ran but a quality or speed threshold was not met."""

    exit_code = EXIT_GATE


class RuntimeFailureError(CompressError):
    """The work itself failed: export parity beyond tolerance, out of memory, an engine error."""

    exit_code = EXIT_RUNTIME
