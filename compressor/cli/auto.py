"""``compress auto``: search for the fastest model within a quality budget; a thin layer over
``compressor.auto``."""

from __future__ import annotations

import click

from compressor.cli.common import emit, set_json

# Every task's budget option (``Task.budget_option``); the teacher's task decides which one applies.
BUDGETS = ("max-accuracy-drop", "max-perplexity-increase", "max-f1-drop", "max-score-drop")


def _summary(report: dict) -> list[str]:
    winner = report.get("winner") or {}
    final = winner.get("final") or {}
    trials = report.get("trials") or {}
    lines = [f"compress auto: {trials.get('total')} trials ({trials.get('complete')} complete, "
             f"{trials.get('pruned')} pruned, {trials.get('fail')} failed); front: {report.get('pareto')}"]
    if winner:
        speed = final.get("speedup_vs_teacher")
        lines.append(f"winner: trial {winner['trial']} ({winner['configuration']}): {final.get('split')} cost "
                     f"{final.get('cost'):.3g}, p50 {final.get('p50_ms'):.3g} ms"
                     + (f" ({speed:.1f}x the teacher)" if speed else "") + f", {final.get('size_mb'):.3g} MB")
        lines.append(f"artifact {winner['artifact']}; recipe {winner['recipe']}; baseline {winner['baseline_report']}")
    return lines


@click.command("auto")
@click.argument("teacher", type=str)
@click.option("--data", required=True, help="Training data (distillation, pruning calibration and recovery).")
@click.option("--eval-data", required=True, help="Dev data the search selects on.")
@click.option("--test-data", default=None, help="Held-out data for the winner's final quality (never searched on).")
@click.option("--confirm-fraction", type=float, default=0.3, show_default=True,
              help="Share of --eval-data held out from the search; the winner must stay within budget on it.")
@click.option("--confirm-data", default=None, help="Confirmation rows as a file of their own (instead of a share of --eval-data).")
@click.option("--finalists", type=int, default=4, show_default=True,
              help="Fastest feasible trials benched together on the confirmation rows, this many at a time.")
@click.option("--finalist-rounds", type=int, default=5, show_default=True,
              help="Side-by-side timing rounds of the finalists (alternating order; each finalist's best round decides).")
@click.option("--finalist-seconds", type=float, default=2.0, show_default=True,
              help="Minimum timing of each finalist per round.")
@click.option("--finalist-tie", type=float, default=0.05, show_default=True,
              help="Finalists this close (a share) to the fastest are tied; the smallest on disk wins.")
@click.option("--max-accuracy-drop", type=float, default=None, metavar="P", help="Classifiers: points of accuracy.")
@click.option("--max-perplexity-increase", type=float, default=None, metavar="P", help="LMs: percent perplexity.")
@click.option("--max-f1-drop", type=float, default=None, metavar="P", help="Token classifiers: entity-F1 points.")
@click.option("--max-score-drop", type=float, default=None, metavar="P", help="Sentence embeddings: Spearman points.")
@click.option("--objective", type=click.Choice(["latency", "size", "throughput"]), default="latency", show_default=True,
              help="What the winner minimises: p50 at batch 1, size on disk, or maximises samples/s.")
@click.option("--time-budget", default="60m", show_default=True, help="Wall time of this invocation: 90s, 60m, 1.5h.")
@click.option("-o", "--output", required=True, help="Run directory (study, trials, front, winner, recipe, baseline).")
@click.option("--resume", is_flag=True, help="Continue the search in an existing run directory (same teacher).")
@click.option("--trials", type=int, default=None, help="Stop after N trials in this invocation.")
@click.option("--student-layers", default=None, metavar="N,N,...", help="Student depths searched (default: a third to half of the teacher's).")
@click.option("--distill-steps", default="500,1000,2000", show_default=True, metavar="N,N,...",
              help="Distillation lengths searched (optimizer steps); 0 alone: only the given --student(s).")
@click.option("--student", "students", multiple=True, metavar="DIR",
              help="An existing student of TEACHER, searched besides distilling new ones (repeatable); its trials "
                   "start at pruning.")
@click.option("--recover-steps", default=None, metavar="N,N,...",
              help="Recovery lengths after pruning searched, 0 for none (default: a quarter of the distillation).")
@click.option("--prune-heads", default=None, metavar="S,S,...",
              help="Shares of attention heads pruned, searched (default: 0,0.25,0.5).")
@click.option("--prune-ffn", default=None, metavar="S,S,...", help="Shares of FFN width pruned, searched (default: 0,0.3,0.5).")
@click.option("--prune-layers", default=None, metavar="S,S,...",
              help="Shares of a 3+-layer student's layers pruned, searched (default: 0,0.34).")
@click.option("--recover-data", default=None, metavar="FILE",
              help="Text the recovery after pruning distils on, labels not needed (default: --data). In-domain text "
                   "the teacher did not train on gives it softer targets than its own training rows.")
@click.option("--backends", default=None, metavar="NAME,...", help="Runtimes searched (default: every one available: pytorch, onnx).")
@click.option("--vocab", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Vocabulary trimming (prune --method vocab): searched (auto, where available), always, or never.")
@click.option("--vocab-data", default=None, metavar="FILE",
              help="Text whose tokens a trimmed vocabulary keeps, labels not needed (default: --data).")
@click.option("--vocab-size", type=int, default=None, metavar="N",
              help="Keep at most N tokens when trimming: specials, single characters, then the most frequent "
                   "(prune --method vocab=N; default: every token the text uses).")
@click.option("--embeddings", type=click.Choice(["int8", "int4"]), default="int8", show_default=True,
              help="Embedding tables of ONNX INT8 trials: int8, or int4 (quantize --embeddings int4; blocks of the "
                   "largest of 128..16 that tiles the hidden width).")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Distillation batch size.")
@click.option("--max-length", type=int, default=128, show_default=True, help="Max tokens per row.")
@click.option("--lr", type=float, default=1e-4, show_default=True, help="Distillation peak learning rate.")
@click.option("--threads", type=int, default=None, help="Threads for timing (default: every CPU available).")
@click.option("--bench-seconds", type=float, default=1.0, show_default=True, help="Minimum timing per batch size in each bench.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.pass_context
def command(ctx: click.Context, teacher: str, as_json: bool, **values) -> dict:
    """Search for the fastest (or smallest) compression of TEACHER within a quality budget.

    Trials (optuna TPE with a successive-halving pruner over the distillation's dev evaluations) run
    distill, prune, export and quantize through the stage library and bench each result on --eval-data.
    Writes to -o DIR: the Pareto front (pareto.json/.md/.png), the winner (winner/), recipe.yaml for
    `compress run`, and the winner's bench against the teacher (baseline/). Exit 1 when no trial meets the budget.
    """
    set_json(ctx, as_json)
    from compressor.auto import AutoConfig, Budget, run_auto
    from compressor.auto.config import int_list, parse_duration, share_list
    from compressor.errors import BadInputError

    given = [(name, values.pop(name.replace("-", "_"))) for name in BUDGETS]
    given = [(name, value) for name, value in given if value is not None]
    if not given:
        raise BadInputError("no quality budget: give the teacher task's budget, e.g. --max-accuracy-drop 1.0 "
                            "(classifiers) or --max-perplexity-increase 5 (LMs)")
    if len(given) > 1:
        raise BadInputError(f"--{given[0][0]} and --{given[1][0]}: give one quality budget")
    option, value = given[0]
    backends = values.pop("backends")
    config = AutoConfig(
        teacher=teacher, budget=Budget(option.replace("-", "_"), value),
        time_budget_s=parse_duration(values.pop("time_budget")),
        student_layers=int_list(values.pop("student_layers"), "--student-layers"),
        distill_steps=int_list(values.pop("distill_steps"), "--distill-steps", low=0),
        recover_steps=int_list(values.pop("recover_steps"), "--recover-steps", low=0),
        students=tuple(values.pop("students")),
        **{name: share_list(values.pop(name), "--" + name.replace("_", "-"))
           for name in ("prune_heads", "prune_ffn", "prune_layers")},
        backends=tuple(b.strip() for b in backends.split(",") if b.strip()) if backends else None,
        **values,
    )
    report = run_auto(config)
    emit(ctx, report, _summary(report))
    return report
