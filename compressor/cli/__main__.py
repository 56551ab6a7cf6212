# `python -m compressor.cli` (and `accelerate launch -m compressor.cli ...`) runs the CLI.
from compressor.cli.main import main

main()
