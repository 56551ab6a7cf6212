"""Options and output helpers every command shares, so each command module stays a few lines."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

F = Callable[..., Any]


def print_json(report: dict[str, Any]) -> None:
    from compressor.manifest import _json_default

    sys.stdout.write(json.dumps(report, indent=2, default=_json_default) + "\n")
    sys.stdout.flush()


def emit(ctx: click.Context, report: dict[str, Any], summary: list[str]) -> None:
    """The report as JSON on stdout with --json; a short human summary on stderr unless --quiet."""
    if ctx.obj.get("json"):
        print_json(report)
    from compressor import progress

    if not progress._quiet:
        for line in summary:
            click.echo(line, err=True)


def _load_config_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--config FILE``: YAML/JSON option values that become defaults; flags still win."""
    if not value:
        return value
    path = Path(value)
    if not path.is_file():
        raise click.BadParameter(f"{path}: no such file", ctx=ctx, param=param)
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise click.BadParameter(f"{path}: not valid YAML/JSON ({exc})", ctx=ctx, param=param) from exc
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path}: expected a mapping of option names to values", ctx=ctx, param=param)
    known = {p.name: p for p in ctx.command.params if p.name not in ("config",)}
    defaults = {}
    for key, item in data.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise click.BadParameter(f"{path}: unknown option {key!r}", ctx=ctx, param=param)
        defaults[name] = item
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def common_options(func: F) -> F:
    """--json, --config."""
    func = click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")(func)
    func = click.option(
        "--config",
        type=click.Path(dir_okay=False),
        is_eager=True,
        expose_value=False,
        callback=_load_config_file,
        help="YAML/JSON file of option values (flags override it).",
    )(func)
    return func


def output_options(func: F) -> F:
    func = click.option("--force", is_flag=True, help="Replace the output directory if it exists.")(func)
    func = click.option(
        "-o", "--output", "output", required=True, type=click.Path(file_okay=False), help="Output artifact directory."
    )(func)
    return func


def set_json(ctx: click.Context, as_json: bool) -> None:
    ctx.find_root().obj["json"] = as_json
