"""Models and helpers for the quantize tests (a uniquely named module, imported by the test files).

A random tiny LM is a poor quantization subject: it predicts almost uniformly, so noise does not hurt
it (it can even help). ``sensitive_lm`` builds one where quantization measurably hurts, without any
training: the head (untied) is fitted to the corpus on the float model's own features, so the float
model sits at a minimum and any perturbation of those features raises perplexity; and one layer gets
an outlier weight per output column, so quantizing *that* layer costs far more than the others.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

SENSITIVE_LAYER = "transformer.h.1.mlp.c_fc"


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a shared 2-core machine every small op then
    waits for a busy second core (AWQ's search: 0.3 s on one thread, 20 s on two). Restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sensitive_lm(tiny_gpt2_dir: Path, corpus_file: Path, out: Path, *, outlier: float = 3.0) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from compressor.data import DataSpec, load_texts
    from compressor.data.batching import lm_blocks

    shutil.copytree(tiny_gpt2_dir, out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.transformer.wte.weight.mul_(10)  # a stronger token signal for the head to use
        for name, module in model.named_modules():
            if type(module).__name__ == "Conv1D":
                module.weight.mul_(3)
                if name == SENSITIVE_LAYER:
                    weight = module.weight  # (in, out): one outlier per output column
                    rows = torch.randint(0, weight.shape[0], (weight.shape[1],), generator=generator)
                    weight[rows, torch.arange(weight.shape[1])] = outlier
        blocks = torch.from_numpy(lm_blocks(tokenizer, load_texts(DataSpec(str(corpus_file))), block_size=32))
        features = model.transformer(blocks).last_hidden_state[:, :-1].reshape(-1, model.config.n_embd)
        targets = blocks[:, 1:].reshape(-1)
    head = torch.zeros(model.config.vocab_size, model.config.n_embd, requires_grad=True)
    optimizer = torch.optim.Adam([head], lr=0.1)
    for _ in range(300):
        loss = torch.nn.functional.cross_entropy(features @ head.T, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(head.detach().clone())
    model.save_pretrained(out)
    return out


def report_of(result) -> dict:
    """The --json report a CLI run printed on stdout."""
    return json.loads(result.stdout)


def write_table(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    lines = ["\t".join(header)] + ["\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path
