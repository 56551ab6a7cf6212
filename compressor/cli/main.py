"""The ``compress`` group: lazy command loading, global flags, and the error → exit-code contract.

Commands are imported only when invoked or listed, and import the library inside their bodies, so
``compress --help`` and ``--version`` never import torch.
"""

from __future__ import annotations

import logging
import signal
import sys
import warnings
from importlib import import_module
from typing import Any

import click

from compressor.errors import EXIT_BAD_INPUT, EXIT_RUNTIME, CompressError

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C

# name -> "module:attribute"; only commands that work are listed here.
COMMANDS = {
    "bench": "compressor.cli.bench:command",
    "distill": "compressor.cli.distill:command",
    "export-onnx": "compressor.cli.export_onnx:command",
    "export-openvino": "compressor.cli.export_openvino:command",
    "inspect": "compressor.cli.inspect:command",
    "quantize": "compressor.cli.quantize:command",
    "prune": "compressor.cli.prune:command",
    "run": "compressor.cli.run:command",
    "auto": "compressor.cli.auto:command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        return getattr(import_module(module), attr)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CompressError as exc:
            if ctx.obj and ctx.obj.get("verbose"):
                import traceback

                traceback.print_exc()
            if exc.report is not None and ctx.obj and ctx.obj.get("json"):
                from compressor.cli.common import print_json

                print_json(exc.report)
            click.echo(f"compress: error: {exc.message}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - a crash is exit 3, never 1 (1 means a gate failed)
            verbose = bool(ctx.obj and ctx.obj.get("verbose"))
            if verbose:
                import traceback

                traceback.print_exc()
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else "(no message)"
            hint = "" if verbose else " (run with -v for the traceback)"
            click.echo(f"compress: internal error: {type(exc).__name__}: {message}{hint}", err=True)
            ctx.exit(EXIT_RUNTIME)


def _quiet_libraries(verbose: bool) -> None:
    """Library chatter (tracer warnings, deprecation notes) is noise in CI logs unless -v."""
    if verbose:
        return
    warnings.filterwarnings("ignore")
    for name in ("transformers", "optimum", "onnxruntime", "torch", "torch.utils._pytree", "torchao",
                 "neural_compressor", "accelerate", "nncf"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import os

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="compress", prog_name="compress")
@click.option("-v", "--verbose", is_flag=True, help="Show library logs and full tracebacks.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or status lines on stderr.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """Compress Hugging Face models (BERT classifiers, GPT-2 and Llama-family LMs) and prove what it costs.

    Exit codes: 0 success, 1 a gate failed, 2 bad usage or input, 3 the work failed at run time.
    """
    from compressor import progress

    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    progress.set_quiet(quiet)
    _quiet_libraries(verbose)


def _on_sigterm(signum: int, frame: Any) -> None:
    """Remove the half-written output and end now with 128 + signal (143): not by raising SystemExit,
    which code inside a C extension (torch's tracer) can swallow and carry on."""
    import os

    from compressor.artifact import abandon_staged_outputs

    abandon_staged_outputs()
    sys.stderr.write("compress: terminated; no output was left behind\n")
    sys.stderr.flush()
    os._exit(128 + signum)


def main(args: list[str] | None = None) -> None:
    """The console entry point. Click runs in non-standalone mode so that Ctrl-C reaches us (its
    standalone mode turns KeyboardInterrupt into "Aborted!" and exit 1, the gate-failed code)."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = cli.main(args=args, prog_name="compress", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("compress: interrupted; no output was left behind", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()

__all__ = ["EXIT_BAD_INPUT", "cli", "main"]
