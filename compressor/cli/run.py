"""``compress run``: a recipe of stages as one command."""

from __future__ import annotations

import click

from compressor.cli.common import emit, set_json


@click.command("run")
@click.argument("recipe", type=str)
@click.option("--set", "overrides", multiple=True, metavar="STAGE.KEY=VALUE",
              help="Override a stage option (or inputs.NAME=PATH, seed=N); repeatable.")
@click.option("--out", "run_dir", default=None, help="Run directory (default: runs/<recipe name>).")
@click.option("--resume", is_flag=True, help="Continue an existing run dir; stages whose inputs and options are unchanged are skipped.")
@click.option("--dry-run", is_flag=True, help="Validate the recipe and print the resolved plan; run nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON on stdout.")
@click.pass_context
def command(ctx: click.Context, recipe: str, overrides: tuple[str, ...], run_dir: str | None, resume: bool,
            dry_run: bool, as_json: bool) -> dict:
    """Run the stages of RECIPE (YAML): distill, prune, quantize, export-onnx, bench.

    The recipe is validated before anything runs; the final bench gates decide the exit code.
    """
    set_json(ctx, as_json)
    from compressor.errors import GateFailedError
    from compressor.pipeline import run_pipeline
    from compressor.pipeline.summary import summary_lines

    try:
        report = run_pipeline(recipe, run_dir, overrides=list(overrides), resume=resume, dry_run=dry_run)
    except GateFailedError as exc:
        for line in summary_lines(exc.report or {}):
            click.echo(line, err=True)
        raise
    if dry_run:
        lines = [f"plan for {report['recipe']} in {report['run_dir']}:"]
        lines += [f"  {s['name']}: {s['command']}" for s in report["stages"]]
        if not as_json:
            for line in lines:
                click.echo(line)
        emit(ctx, report, [])
        return report
    emit(ctx, report, summary_lines(report))
    return report
