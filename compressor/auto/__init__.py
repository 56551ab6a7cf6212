"""``compress auto``: the fastest model within a quality budget, found by search (optuna) over the stage
library, handed to CI as a recipe. ``space`` (what is searched, the backend registry), ``search`` (the
study and its trials), ``pareto`` (the front), ``recipe_writer`` (recipes for ``compress run``)."""

from compressor.auto.config import AutoConfig, Budget

__all__ = ["AutoConfig", "Budget", "run_auto"]


def run_auto(config: AutoConfig) -> dict:
    from compressor.auto.search import run_auto as run

    return run(config)
