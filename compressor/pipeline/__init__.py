"""Recipe pipelines: a list of stages, artifact to artifact, resumable, gated by the final bench."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor.pipeline.recipe import Recipe, Stage, load_recipe
from compressor.pipeline.runner import plan, run_recipe

__all__ = ["Recipe", "Stage", "load_recipe", "plan", "run_pipeline", "run_recipe"]


def run_pipeline(
    recipe_path: str | Path,
    run_dir: str | Path | None = None,
    *,
    overrides: list[str] | None = None,
    resume: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Load, validate and run a recipe; the run directory defaults to ``runs/<recipe name>``."""
    recipe = load_recipe(recipe_path, overrides)
    target = Path(run_dir) if run_dir else Path("runs") / recipe.name
    return run_recipe(recipe, target, resume=resume, dry_run=dry_run)
