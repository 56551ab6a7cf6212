"""Stage options, declared once: the CLI builds its flags from them and recipes are checked by them.

Every option of every stage is an ``Option``: its flag name, kind, default, range and help. The same
``convert`` judges a value whether it came from a command line, a ``--config`` file or a recipe, so a
bad value is refused the same way everywhere (exit 2, naming the option), before any work. Ranges
are part of the declaration: every number is checked finite and in range at parse time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from compressor.errors import BadInputError

KINDS = ("str", "int", "float", "flag", "choice")


@dataclass(frozen=True)
class Option:
    name: str  # the flag without dashes: "alpha-kd"
    kind: str = "str"
    default: Any = None
    help: str = ""
    required: bool = False
    min: float | None = None  # inclusive unless min_open
    max: float | None = None  # inclusive
    min_open: bool = False
    choices: tuple[str, ...] = ()
    multiple: bool = False  # repeatable; the value is a tuple
    negative: str | None = None  # "--per-tensor" for a flag with an off switch
    aliases: tuple[str, ...] = ()
    metavar: str | None = None
    dest: str | None = None  # the Python name; default: the flag with "_"
    path: str | None = None  # "data" (a data file or hub name) or "artifact" (a directory): checked to exist
    noun: str = ""  # what a choice is, for "unknown level; choose one of ..."

    def __post_init__(self) -> None:
        assert self.kind in KINDS, self.kind

    @property
    def key(self) -> str:
        return self.dest or self.name.replace("-", "_")

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    def _check_range(self, number: float) -> None:
        below = self.min is not None and (number <= self.min if self.min_open else number < self.min)
        above = self.max is not None and number > self.max
        if below or above:
            low = "-inf" if self.min is None else f"{self.min:g}"
            high = "inf" if self.max is None else f"{self.max:g}"
            bracket = "(" if self.min_open or self.min is None else "["
            raise BadInputError(f"{self.flag} {number}: out of range; expected a value in {bracket}{low}, {high}]")

    def convert(self, value: Any) -> Any:
        """``value`` (a string from a command line, or a YAML/JSON value) as this option's type."""
        if value is None:
            return None
        if self.multiple:
            items = value if isinstance(value, (list, tuple)) else [value]
            return tuple(self._one(item) for item in items)
        return self._one(value)

    def _one(self, value: Any) -> Any:
        if self.kind == "flag":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "yes", "1", "on"):
                return True
            if text in ("false", "no", "0", "off"):
                return False
            raise BadInputError(f"{self.flag} {value!r}: expected true or false")
        if self.kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise BadInputError(f"{self.flag}: {value!r} is not a valid integer")
            try:
                number = int(str(value).strip()) if not isinstance(value, (int, float)) else int(value)
            except ValueError:
                raise BadInputError(f"{self.flag}: {value!r} is not a valid integer") from None
            self._check_range(number)
            return number
        if self.kind == "float":
            if isinstance(value, bool):
                raise BadInputError(f"{self.flag}: {value!r} is not a valid float")
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise BadInputError(f"{self.flag}: {value!r} is not a valid float") from None
            if not math.isfinite(number):
                raise BadInputError(f"{self.flag} {value}: must be a finite number")
            self._check_range(number)
            return number
        if isinstance(value, (list, tuple)):  # a YAML list for a comma-separated option
            value = ",".join(str(v) for v in value)
        if isinstance(value, (dict, set)):
            raise BadInputError(f"{self.flag}: expected a value, got a {type(value).__name__}")
        text = str(value)
        if self.kind == "choice":
            text = text.strip()
            if text not in self.choices:
                unknown = f"unknown {self.noun}; " if self.noun else ""
                raise BadInputError(f"{self.flag} {text!r}: {unknown}choose one of {', '.join(self.choices)}")
        elif not text.strip():
            raise BadInputError(f"{self.flag}: empty value")
        return text


# Shared by every stage that reads data files: which columns hold what.
COLUMN_OPTIONS = (
    Option("text-column", help="Text column (default: sentence, text, sentence1, ... whichever exists)."),
    Option("text-pair-column", help="Second-sentence column for pair tasks."),
    Option("label-column", help="Label column (default: label)."),
    Option("no-header", "flag", False,
           help="TSV/CSV data without a header line: name columns by index (--text-column 0 --label-column 1)."),
)
ALLOW_PICKLE = Option("allow-pickle", "flag", False,
                      help="Load a pickle (pytorch_model.bin) checkpoint with weights_only=True.")
SEED = Option("seed", "int", 0, min=0, max=2**32 - 1, help="Seed: a CPU run is repeatable.")
def dtype_option(what: str) -> Option:
    from compressor.dtypes import DTYPES

    return Option("dtype", "choice", "auto", choices=DTYPES,
                  help=f"Storage dtype of the output: auto (the {what}'s), float32, float16 or bfloat16. "
                       "The work itself runs in float32 either way.")


DEVICE = Option("device", "choice", "cpu", choices=("cpu", "cuda"), noun="device", help="cpu or cuda.")


def parse(options: tuple[Option, ...], given: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Every option's value (converted, checked, defaulted) from ``given`` (keys: flag names or
    Python names). Unknown keys and missing required options are errors that name them."""
    by_key = {o.key: o for o in options} | {o.name: o for o in options}
    values: dict[str, Any] = {}
    prefix = f"{where}: " if where else ""
    for key, raw in given.items():
        option = by_key.get(str(key)) or by_key.get(str(key).replace("_", "-"))
        if option is None:
            known = ", ".join(sorted(o.name for o in options))
            raise BadInputError(f"{prefix}No such option '--{str(key).replace('_', '-')}' (options: {known})")
        try:
            values[option.key] = option.convert(raw)
        except BadInputError as exc:
            raise BadInputError(prefix + exc.message) from exc
    for option in options:
        if values.get(option.key) is None:
            if option.required:
                raise BadInputError(f"{prefix}missing option {option.flag}")
            values[option.key] = option.default
    return values


def data_spec(values: dict[str, Any], key: str) -> Any:
    """The ``DataSpec`` of data option ``key`` with the shared column options, or None."""
    if values.get(key) is None:
        return None
    from compressor.data import DataSpec

    return DataSpec(path=values[key], text_column=values.get("text_column"),
                    text_pair_column=values.get("text_pair_column"), label_column=values.get("label_column"),
                    no_header=bool(values.get("no_header")))
