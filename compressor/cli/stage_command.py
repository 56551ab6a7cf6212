"""A Click command for a stage, built from the stage's declared options (``compressor.stages``).

The command parses flags, hands every value to the stage's own option parser (ranges, choices, the
typed config: the same checks a recipe gets), calls the library, and prints a short summary.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from compressor.cli.common import common_options, emit, output_options, set_json
from compressor.errors import GateFailedError

Summary = Callable[[Any, dict[str, Any]], list[str]]
_METAVARS = {"int": "INTEGER", "float": "FLOAT", "str": "TEXT"}


def _click_option(option: Any) -> click.Option:
    help_text = option.help
    if option.default is not None and option.kind != "flag":
        help_text += f"  [default: {option.default}]"
    if option.kind == "flag":
        decls = [f"--{option.name}/{option.negative}" if option.negative else f"--{option.name}", option.key]
        return click.Option(decls, is_flag=True, default=option.default, help=help_text)
    metavar = option.metavar or ("[" + "|".join(option.choices) + "]" if option.choices else _METAVARS[option.kind])
    return click.Option([option.flag, *option.aliases, option.key], type=click.UNPROCESSED, default=None,
                        multiple=option.multiple, metavar=metavar, help=help_text)


def stage_command(stage: Any, summary: Summary, *, summarize_gate_failure: bool = False,
                  extra_help: str = "") -> click.Command:
    """``compress <stage>``; ``summary(output, report)`` gives the human lines printed on stderr."""

    def callback(**kwargs: Any) -> dict[str, Any] | None:
        ctx = click.get_current_context()
        set_json(ctx, kwargs.pop("as_json"))
        inputs = kwargs.pop("inputs")
        output, force = kwargs.pop("output", None), kwargs.pop("force", False)
        given = {k: v for k, v in kwargs.items() if v is not None and v != ()}
        values, config = stage.parse(given)
        try:
            report = stage.invoke(list(inputs) if isinstance(inputs, tuple) else [inputs], output, config,
                                  force=force, allow_pickle=values.get("allow_pickle", False))
        except GateFailedError as exc:
            if summarize_gate_failure and exc.report:
                _echo(summary(output, exc.report))
            raise
        if os.environ.get("RANK", "0") != "0":  # under `accelerate launch` every process returns
            return report
        emit(ctx, report, summary(output, report))
        return report

    params: list[click.Parameter] = []
    if stage.takes == "artifacts":
        params.append(click.Argument(["inputs"], nargs=-1, required=True, metavar=stage.argument))
    else:
        params.append(click.Argument(["inputs"], metavar=stage.argument))
    params += [_click_option(o) for o in stage.options()]
    help_text = stage.help + (f"\n\n{extra_help}" if extra_help else "")
    command = click.Command(stage.name, callback=callback, params=params, help=help_text)
    if stage.writes_artifact:
        output_options(command)
    common_options(command)
    return command


def _echo(lines: list[str]) -> None:
    from compressor import progress

    if not progress._quiet:
        for line in lines:
            click.echo(line, err=True)
