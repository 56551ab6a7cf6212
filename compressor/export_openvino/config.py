"""Typed configuration of the OpenVINO export stage; validated on construction so the API and CLI agree."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from compressor.data import DataSpec
from compressor.errors import BadInputError

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
        if self.atol is not None and not self.atol > 0:
            raise BadInputError(f"--atol {self.atol}: must be a positive number")
        if self.parity_samples < 1:
            raise BadInputError(f"--parity-samples {self.parity_samples}: must be at least 1")

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
