"""Typed configuration of the export stage; validated on construction so the API and CLI agree."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from compressor.data import DataSpec
from compressor.devices import DEVICES
from compressor.errors import BadInputError

# 14 is the lowest opset with the attention ops transformers exports; 22 the highest every tool in
# the chain (onnx, onnxruntime's optimizer and quantizer) handles.
MIN_OPSET, MAX_OPSET = 14, 22
OPTIMIZE_LEVELS = ("O0", "O1", "O2", "O3")
# What becomes of onnxruntime's fused SkipLayerNormalization: "split" into Sum + LayerNormalization
# (onnxruntime's CPU kernel for the fused op is the slower one, see export/layernorm_split.py),
# "fused" as the optimizer left it, "auto": split for --device cpu, fused for cuda.
SKIP_LAYERNORM = ("auto", "split", "fused")

# Max |logit diff| allowed between PyTorch and onnxruntime. fp32 graphs differ only by fusion and
# summation order; O3's tanh-approximated GELU and fp16 move logits further.
DEFAULT_ATOL = {"fp32": 1e-3, "fp32-O3": 5e-2, "fp16": 1e-1}



def check_parity_options(atol: float | None, parity_samples: int) -> None:
    """The parity settings every exporter shares, checked for the Python API (the CLI's option ranges
    catch them earlier)."""
    if atol is not None and not atol > 0:
        raise BadInputError(f"--atol {atol}: must be a positive number")
    if parity_samples < 1:
        raise BadInputError(f"--parity-samples {parity_samples}: must be at least 1")

@dataclass(frozen=True)
class ExportConfig:
    opset: int | None = None
    optimize: str = "O2"
    fp16: bool = False
    device: str = "cpu"
    parity_data: DataSpec | None = None
    parity_samples: int = 512
    max_length: int = 128
    atol: float | None = None
    skip_layernorm: str = "auto"

    def __post_init__(self) -> None:
        if self.opset is not None and not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise BadInputError(f"--opset {self.opset}: out of range; supported opsets are {MIN_OPSET}..{MAX_OPSET}")
        if self.optimize not in OPTIMIZE_LEVELS:
            raise BadInputError(f"--optimize {self.optimize!r}: unknown level; choose one of {', '.join(OPTIMIZE_LEVELS)}")
        if self.device not in DEVICES:
            raise BadInputError(f"--device {self.device!r}: unknown device; choose one of {', '.join(DEVICES)}")
        if self.fp16 and self.device != "cuda":
            raise BadInputError(
                "--fp16 with --device cpu: onnxruntime's CPU provider cannot run these fp16 graphs; "
                "use --device cuda or drop --fp16"
            )
        if self.skip_layernorm not in SKIP_LAYERNORM:
            raise BadInputError(f"--skip-layernorm {self.skip_layernorm!r}: choose one of {', '.join(SKIP_LAYERNORM)}")
        check_parity_options(self.atol, self.parity_samples)

    @property
    def split_skip_layernorm(self) -> bool:
        return self.skip_layernorm == "split" or (self.skip_layernorm == "auto" and self.device == "cpu")

    @property
    def tolerance(self) -> float:
        if self.atol is not None:
            return self.atol
        if self.fp16:
            return DEFAULT_ATOL["fp16"]
        return DEFAULT_ATOL["fp32-O3" if self.optimize == "O3" else "fp32"]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["parity_data"] = self.parity_data.to_dict() if self.parity_data else None
        data["atol"] = self.tolerance
        return data
