"""On-disk formats of artifacts that transformers alone cannot rebuild.

Core, not a stage: the quantize stage writes these formats and ``compressor.loading`` reads them, so
both depend on this package and loading never imports a stage.
"""
