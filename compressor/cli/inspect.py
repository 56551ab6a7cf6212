"""``compress inspect``: an artifact's lineage and each stage's report."""

from __future__ import annotations

import click

from compressor.cli.common import emit, set_json


@click.command("inspect")
@click.argument("directory", type=str)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON on stdout.")
@click.pass_context
def command(ctx: click.Context, directory: str, as_json: bool) -> None:
    """Show how the artifact in DIRECTORY was made: every stage, its config and its report."""
    set_json(ctx, as_json)
    from compressor.inspection import describe

    report, lines = describe(directory)
    if not as_json:
        for line in lines:
            click.echo(line)
    else:
        emit(ctx, report, [])
