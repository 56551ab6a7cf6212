"""GPT-2 family: decoder-only causal language models."""

from __future__ import annotations

from compressor.families.base import CAUSAL_LM, Family

GPT2 = Family(
    name="gpt2",
    model_types=("gpt2",),
    tasks=(CAUSAL_LM,),
    architecture_tasks=(("LMHeadModel", CAUSAL_LM), ("ForCausalLM", CAUSAL_LM)),
    default_task=CAUSAL_LM,
)
