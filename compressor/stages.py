"""The stage registry: one entry per stage kind, the single API the CLI and the recipe runner share.

A stage is a library function of (input artifact(s), output, typed config) that returns its report.
Its options are declared once (``<stage>/options.py``: ``OPTIONS`` and ``build(values) -> config``);
``compress <stage>`` builds its flags from them and ``compress run`` checks recipe values with them.
Nothing here imports torch; a stage's modules are imported when it is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from compressor import options as opts
from compressor.errors import BadInputError


@dataclass(frozen=True)
class StageDef:
    name: str
    help: str
    options_module: str  # module with OPTIONS and build(values) -> typed config
    function: str  # "module:function" of the stage
    takes: str = "source"  # "source": one artifact and an output directory; "artifacts": several, no output
    argument: str = "SRC"

    @property
    def writes_artifact(self) -> bool:
        return self.takes == "source"

    def options(self) -> tuple[opts.Option, ...]:
        return import_module(self.options_module).OPTIONS

    def parse(self, given: dict[str, Any], where: str = "") -> tuple[dict[str, Any], Any]:
        """Checked option values and the typed config built from them (every check that needs no
        model or data file runs here, so a recipe is judged whole before anything runs)."""
        values = opts.parse(self.options(), given, where)
        try:
            config = import_module(self.options_module).build(values)
        except BadInputError as exc:
            raise BadInputError(f"{where}: {exc.message}" if where else exc.message) from exc
        return values, config

    def invoke(self, inputs: list[str], output: str | Path | None, config: Any, *, force: bool = False,
               allow_pickle: bool = False, **hooks: Any) -> dict[str, Any]:
        """Run the stage; returns its report. ``hooks`` are the stage function's observer keywords
        (distill's ``on_eval``), passed through unchanged."""
        module, _, attr = self.function.partition(":")
        function = getattr(import_module(module), attr)
        if self.takes == "artifacts":
            return function(list(inputs), config, **hooks)
        return function(inputs[0], output, config, force=force, allow_pickle=allow_pickle, **hooks)


STAGES: dict[str, StageDef] = {
    stage.name: stage
    for stage in (
        StageDef("distill", "Distil TEACHER (a BERT classifier, GPT-2 or Llama-family LM) into a smaller student "
                 "written to -o DIR.",
                 "compressor.distill.options", "compressor.distill.stage:distill", argument="TEACHER"),
        StageDef("prune", "Prune SRC (a PyTorch checkpoint) into -o DIR: physically remove heads, FFN neurons or "
                 "layers, or zero weights (sparsity), optionally recovering quality by distillation from the "
                 "unpruned model.\n\nThe output is a standard checkpoint that AutoModel*.from_pretrained loads "
                 "without this tool.", "compressor.prune.options", "compressor.prune.stage:prune"),
        StageDef("quantize", "Quantize SRC (a PyTorch checkpoint or an ONNX artifact) into a new artifact.\n\n"
                 "With --eval-data and a budget (--max-accuracy-drop or --max-perplexity-increase), quality is "
                 "measured before and after; when over budget the most sensitive layers (measured one by one) are "
                 "kept in float until it fits. Exit 1, writing nothing, when no fallback meets the budget.",
                 "compressor.quantize.options", "compressor.quantize.stage:quantize"),
        StageDef("export-onnx", "Export SRC (a PyTorch checkpoint) to ONNX, optimise it and check parity against "
                 "PyTorch.\n\nFails with exit 3, writing nothing, when logits differ by more than --atol.",
                 "compressor.export.options", "compressor.export.stage:export_onnx"),
        StageDef("export-openvino", "Convert SRC (a PyTorch checkpoint or an ONNX artifact) to an OpenVINO IR "
                 "(openvino_model.xml + .bin) and check parity against the source on the OpenVINO CPU plugin.\n\n"
                 "Causal LMs keep their KV cache as OpenVINO state. Fails with exit 3, writing nothing, when "
                 "outputs differ by more than --atol. Needs the openvino extra: pip install \"compress[openvino]\".",
                 "compressor.export_openvino.options", "compressor.export_openvino.stage:export_openvino"),
        StageDef("bench", "Measure ARTIFACTS against --baseline on --data: latency, memory, size, quality; apply "
                 "gates.\n\nExit 1 when any gate fails (each gate is listed with its numbers); reports are written "
                 "either way.", "compressor.bench.options", "compressor.bench.stage:bench", takes="artifacts",
                 argument="ARTIFACTS"),
    )
}


def get(name: str) -> StageDef:
    stage = STAGES.get(name)
    if stage is None:
        raise BadInputError(f"unknown stage {name!r}; stages are: {', '.join(STAGES)}")
    return stage
