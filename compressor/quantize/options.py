"""``compress quantize``'s options (flags, ``--config`` keys and recipe keys) and its typed config."""

from __future__ import annotations

from typing import Any

from compressor.options import ALLOW_PICKLE, COLUMN_OPTIONS, DEVICE, SEED, Option, data_spec
from compressor.quantize.config import ALGORITHMS, CALIB_METHODS, EMBEDDINGS, METHOD_NAMES, QuantizeConfig

OPTIONS = (
    Option("method", "choice", required=True, choices=METHOD_NAMES, noun="method",
           help="ONNX: int8-dynamic, int8-static, int4-weight, fp16. PyTorch: int8-dynamic, int4, int8, smoothquant. "
           "OpenVINO: int8-nncf, int8-weight, int4-weight."),
    Option("algorithm", "choice", choices=ALGORITHMS, noun="algorithm", help="PyTorch int4/int8 weight-only: rtn (default), gptq or awq."),
    Option("per-channel", "flag", True, negative="--per-tensor", help="INT8 weight scales per output channel."),
    Option("block-size", "int", 32, min=-1, max=1 << 16, aliases=("--group-size",),
           help="Weight-only group size (int4/int8, int4-weight MatMulNBits block)."),
    Option("symmetric", "flag", True, negative="--asymmetric", help="Weight-only zero point."),
    Option("accuracy-level", "int", min=0, max=4, help="MatMulNBits compute precision: 0-4 (4 = int8 compute)."),
    Option("alpha", "float", 0.5, min=0, max=1, help="SmoothQuant migration strength (0..1)."),
    Option("calib-data", path="data", help="Calibration data file (int8-static, int8-nncf, smoothquant, gptq, awq)."),
    Option("calib-samples", "int", 128, min=1, max=10**7, help="Rows (or LM blocks) to calibrate on."),
    Option("calib-method", "choice", "entropy", choices=CALIB_METHODS, noun="method",
           help="int8-static: entropy, minmax or percentile."),
    Option("eval-data", path="data", help="Labelled data (or text for LMs) to measure quality before and after."),
    Option("eval-samples", "int", min=1, max=10**9, help="Rows (or LM blocks) to evaluate (default: all)."),
    Option("max-accuracy-drop", "float", max=100, help="Classifiers: allowed accuracy drop in points."),
    Option("max-perplexity-increase", "float", max=1e6, help="LMs: allowed perplexity increase in percent."),
    Option("max-f1-drop", "float", max=100, help="Token classifiers: allowed entity-F1 drop in points."),
    Option("max-score-drop", "float", max=100, help="Sentence embeddings: allowed STS Spearman drop in points (x100)."),
    Option("max-length", "int", 128, min=8, max=1 << 16, help="Tokens per row (LM block length)."),
    Option("embeddings", "choice", "int8", choices=EMBEDDINGS, noun="type",
           help="ONNX int8-dynamic/int8-static: embedding tables in INT8 (one scale per row) or INT4 "
                "(GatherBlockQuantized, a scale per --block-size values of a row; 128 keeps the scales small)."),
    DEVICE,
    SEED,
    *COLUMN_OPTIONS,
    ALLOW_PICKLE,
)


def build(values: dict[str, Any]) -> QuantizeConfig:
    v = values
    return QuantizeConfig(
        method=v["method"], algorithm=v["algorithm"], per_channel=v["per_channel"], block_size=v["block_size"],
        symmetric=v["symmetric"], accuracy_level=v["accuracy_level"], alpha=v["alpha"],
        calib_data=data_spec(v, "calib_data"), calib_samples=v["calib_samples"], calib_method=v["calib_method"],
        eval_data=data_spec(v, "eval_data"), eval_samples=v["eval_samples"], max_accuracy_drop=v["max_accuracy_drop"],
        max_perplexity_increase=v["max_perplexity_increase"], max_f1_drop=v["max_f1_drop"],
        max_score_drop=v["max_score_drop"], max_length=v["max_length"], embeddings=v["embeddings"],
        device=v["device"],
        seed=v["seed"],
    )
