"""Typed configuration of the OpenVINO export stage; validated on construction so the API and CLI agree."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from compressor.data import DataSpec
from compressor.export.config import check_parity_options

# Max |logit diff| allowed between the source (PyTorch or onnxruntime) and OpenVINO's CPU plugin at f32
# (graphs differ by fusion and summation order); fp16-stored weights move logits further.
DEFAULT_ATOL = {"fp32": 1e-3, "fp16": 1e-1}


@dataclass(frozen=True)
class OpenVinoExportConfig:
    fp16: bool = False  # store weights as fp16 (openvino.save_model(compress_to_fp16=True)); compute stays f32
    parity_data: DataSpec | None = None
    parity_samples: int = 512
    max_length: int = 128
    atol: float | None = None
    opset: int | None = None  # of the intermediate ONNX graph of a PyTorch source (optimum's choice)

    def __post_init__(self) -> None:
        check_parity_options(self.atol, self.parity_samples)

    @property
    def tolerance(self) -> float:
        if self.atol is not None:
            return self.atol
        return DEFAULT_ATOL["fp16" if self.fp16 else "fp32"]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["parity_data"] = self.parity_data.to_dict() if self.parity_data else None
        data["atol"] = self.tolerance
        return data
