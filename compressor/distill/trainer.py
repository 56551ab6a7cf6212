"""The distillation loop, written once on accelerate so the same code runs on a CPU, a GPU, or data
parallel under ``accelerate launch`` (the dataloader is sharded, gradients all-reduced, eval
results reduced across processes).

Per step: the teacher's targets (from the cache when every row of the batch is there), the student's
forward, the weighted losses, backward, clip, AdamW, and the warm-up/linear-decay schedule, with
gradient accumulation through ``accelerator.accumulate``. Evaluation runs at each epoch end, every
``eval_steps``, and at the end; the best student by the eval metric is kept. A checkpoint every
``checkpoint_steps`` (accelerate state + this loop's position) lets ``--resume`` continue a run and
reach the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from compressor import finite, progress
from compressor.distill.batches import BucketBatchSampler, Rows, eval_batches
from compressor.distill.config import DistillConfig
from compressor.distill.objective import DistillModule, capture_outputs, compute_losses, make_projections, model_inputs
from compressor.distill.teacher_cache import TeacherCache
from compressor.errors import BadInputError
from compressor.tasks.base import Task

STATE_FILE = "trainer.json"
BEST_FILE = "best.safetensors"


@dataclass
class LoopState:
    """Where the loop is; saved with each checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    samples: int = 0
    train_seconds: float = 0.0
    curve: list[dict[str, float]] = field(default_factory=list)
    best_metric: float | None = None
    best_step: int | None = None
    fingerprint: dict[str, Any] = field(default_factory=dict)


def _finish_swap(checkpoint_dir: Path) -> None:
    """Complete a checkpoint swap that a killed run left half done (see ``save_checkpoint``): between
    ``latest -> previous`` and ``next -> latest`` there is no ``latest``, but ``previous`` is a whole
    checkpoint (only a complete ``latest`` is ever renamed to it)."""
    latest, previous = checkpoint_dir / "latest", checkpoint_dir / "previous"
    if not latest.exists() and (previous / STATE_FILE).is_file():
        previous.rename(latest)


def check_resumable(checkpoint_dir: Path, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """The saved loop state of the checkpoint ``--resume`` would continue; exit-2 error when there is
    none or it was made with settings that change the result."""
    _finish_swap(checkpoint_dir)
    state_file = checkpoint_dir / "latest" / STATE_FILE
    if not state_file.is_file():
        raise BadInputError(
            f"--resume: no checkpoint in {checkpoint_dir} (run with --checkpoint-steps N to write one, or set "
            "--checkpoint-dir)"
        )
    try:
        saved = json.loads(state_file.read_text())
    except json.JSONDecodeError as exc:
        raise BadInputError(f"--resume: {state_file} is not valid JSON ({exc.msg})") from exc
    except UnicodeDecodeError as exc:
        raise BadInputError(f"--resume: {state_file} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    old = saved.get("fingerprint", {})
    if old != fingerprint:
        changed = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
        detail = ", ".join(f"{k} {old.get(k)!r} -> {fingerprint.get(k)!r}" for k in changed[:3])
        raise BadInputError(f"--resume: the checkpoint in {checkpoint_dir} was made with different settings ({detail})")
    return saved


class Distiller:
    def __init__(self, accelerator: Any, *, task: Task, config: DistillConfig, teacher: nn.Module, student: nn.Module,
                 layer_map: tuple[int, ...], teacher_width: int, student_width: int, train: Rows, eval_rows: Rows | None,
                 checkpoint_dir: Path, fingerprint: dict[str, Any],
                 relations: tuple[tuple[nn.Module, ...], tuple[nn.Module, ...]] = ((), ()),
                 on_eval: Callable[[int, float], None] | None = None, cache_file: Path | None = None) -> None:
        self.acc = accelerator
        # Told (step, metric) after each evaluation; a search uses it to stop an unpromising run early
        # (it may raise, ending training with nothing written).
        self.on_eval = on_eval
        self.task = task
        self.config = config
        self.layer_map = layer_map
        self.train_rows = train
        self.eval_rows = eval_rows
        self.checkpoint_dir = checkpoint_dir
        self.metric = task.metric
        device = accelerator.device
        self.teacher = teacher.to(device).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        projections = (make_projections(student_width, teacher_width, len(layer_map))
                       if config.alpha_hidden else None)
        # The family's (query, key, value) modules of the teacher's relation layer and the student's last.
        self.teacher_relations, student_relations = relations if config.alpha_relation else ((), ())
        self.module = DistillModule(student, projections, hidden=config.alpha_hidden > 0,
                                    attentions=config.alpha_attn > 0, model_kwargs=task.model_kwargs,
                                    relation_modules=student_relations)
        self.sampler = BucketBatchSampler(train.lengths(), config.batch_size, config.seed)
        # A private generator: each DataLoader iteration draws a seed from it, which would otherwise
        # come from the global RNG and shift dropout masks between a resumed and an uninterrupted run.
        loader = torch.utils.data.DataLoader(list(range(len(train))), batch_sampler=self.sampler,
                                             collate_fn=train.collate,
                                             generator=torch.Generator().manual_seed(config.seed))
        decay = [p for p in self.module.parameters() if p.ndim >= 2]
        no_decay = [p for p in self.module.parameters() if p.ndim < 2]  # biases and norms
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.lr,
        )
        self.module, self.optimizer, self.loader = accelerator.prepare(self.module, optimizer, loader)
        self.steps_per_epoch = max(1, math.ceil(len(self.loader) / config.grad_accum))
        self.total_steps = config.max_steps or max(1, math.ceil(config.epochs * self.steps_per_epoch))
        from transformers import get_linear_schedule_with_warmup

        # Not passed to prepare(): accelerate would step it once per process per step; stepped by hand
        # after each real optimizer step instead.
        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, int(config.warmup * self.total_steps), self.total_steps
        )
        accelerator.register_for_checkpointing(self.scheduler)
        self.cache_file = cache_file  # --teacher-cache: this run's file, read now and written at the end
        self.cache = self._make_cache()
        if self.cache is not None and cache_file is not None:
            self.cache.load(cache_file)
        self.state = LoopState(fingerprint=fingerprint)
        self.best_state: dict[str, torch.Tensor] | None = None

    # -- teacher ---------------------------------------------------------------------------------
    def _make_cache(self) -> TeacherCache | None:
        """Cache when the losses need only logits; an LM's (top-k) cache only when rows are revisited,
        since top-k is an approximation worth making only if it saves teacher passes."""
        config = self.config
        if not config.cache_teacher or config.needs_teacher_internals:
            return None
        # Kept across runs (--teacher-cache) it pays whenever rows can be cached (checked in the stage).
        if self.cache_file is None and not self.task.cache_worthwhile(self.total_steps, self.steps_per_epoch):
            return None
        return TeacherCache()

    def teacher_targets(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        indices = batch["index"].tolist()
        if self.cache is not None:
            cached = self.cache.get(indices, self.acc.device)
            if cached is not None:
                return cached
        want_hidden, want_attn = self.config.alpha_hidden > 0, self.config.alpha_attn > 0
        with torch.no_grad(), self.acc.autocast(), capture_outputs(self.teacher_relations) as relations:
            out = self.teacher(**model_inputs(batch), output_hidden_states=want_hidden,
                               output_attentions=want_attn, **self.task.model_kwargs)
        # Cached targets are cache-sized (an LM's top-k); live ones are the full logits.
        top_k = self.config.top_k if self.cache is not None else None
        targets: dict[str, Any] = self.task.teacher_targets(out.logits, top_k=top_k)
        if self.cache is not None:
            self.cache.put(indices, targets)
        if want_hidden:
            targets["hidden"] = [out.hidden_states[i + 1] for i in self.layer_map]
        if want_attn:
            targets["attentions"] = [out.attentions[i] for i in self.layer_map]
        if self.teacher_relations:
            targets["relations"] = relations
        return targets

    # -- evaluation ------------------------------------------------------------------------------
    def evaluate(self, model: nn.Module, rows: Rows) -> float:
        """Accuracy or perplexity of ``model`` on ``rows``; each process scores its share of the
        batches and the sums are reduced, so every process gets the same exact number."""
        acc = self.acc
        was_training = model.training
        model.eval()
        if self.task.scores_rows:  # a metric of the whole set: every process scores all of it
            outputs = []
            with torch.no_grad():
                for indices in eval_batches(rows, self.config.batch_size * 2):
                    batch = rows.collate(indices)
                    with acc.autocast():
                        out = model(**model_inputs({k: v.to(acc.device) for k, v in batch.items()}),
                                    **self.task.model_kwargs)
                    outputs.append((batch, out.logits.float().cpu()))
            model.train(was_training)
            return self.task.score_rows(rows, outputs)
        batches = eval_batches(rows, self.config.batch_size * 2)[acc.process_index :: acc.num_processes]
        totals = torch.zeros(2, dtype=torch.float64, device=acc.device)
        with torch.no_grad():
            for indices in batches:
                batch = {k: v.to(acc.device) for k, v in rows.collate(indices).items()}
                with acc.autocast():
                    logits = model(**model_inputs(batch), **self.task.model_kwargs).logits.float()
                numerator, denominator = self.task.eval_sums(logits, batch)
                totals[0] += numerator.double()
                totals[1] += denominator
        totals = acc.reduce(totals, reduction="sum")
        model.train(was_training)
        return self.task.eval_value(float(totals[0] / totals[1].clamp_min(1)))

    def _eval_student(self) -> None:
        if self.eval_rows is None:
            return
        student = self.acc.unwrap_model(self.module).student
        self.check_student(student)
        value = self.evaluate(student, self.eval_rows)
        state = self.state
        state.curve.append({"step": state.step, "epoch": round(state.step / self.steps_per_epoch, 4), self.metric: value})
        if self.acc.is_main_process and not progress.enabled():  # a log line where no bar is shown
            progress.status(f"step {state.step}/{self.total_steps}: {self.metric} {value:.4g}")
        if self.task.better(value, state.best_metric):
            state.best_metric, state.best_step = value, state.step
            self.best_state = {k: v.detach().cpu().clone() for k, v in student.state_dict().items()}
        if self.on_eval is not None:
            self.on_eval(state.step, value)

    # -- checkpoints -----------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Write ``next/`` completely, then swap it for ``latest/``: a kill mid-save keeps the old one."""
        acc = self.acc
        latest, upcoming, previous = (self.checkpoint_dir / n for n in ("latest", "next", "previous"))
        if acc.is_main_process:  # only the main process creates directories
            shutil.rmtree(upcoming, ignore_errors=True)
            upcoming.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(upcoming))
        if acc.is_main_process:
            (upcoming / STATE_FILE).write_text(json.dumps(asdict(self.state), indent=1))
            if self.best_state is not None:
                from safetensors.torch import save_file

                save_file({k: v.contiguous() for k, v in self.best_state.items()}, str(upcoming / BEST_FILE))
            shutil.rmtree(previous, ignore_errors=True)  # half-deleted by a run killed at the last save
            if latest.exists():
                latest.rename(previous)
            upcoming.rename(latest)
            shutil.rmtree(previous, ignore_errors=True)
        acc.wait_for_everyone()

    def load_checkpoint(self) -> None:
        latest = self.checkpoint_dir / "latest"
        saved = check_resumable(self.checkpoint_dir, self.state.fingerprint)
        self._refill_cache(saved["epoch"], saved["batch_in_epoch"])  # before load_state restores the RNGs
        self.acc.load_state(str(latest))
        self.state = LoopState(**saved)
        if (latest / BEST_FILE).exists():
            from safetensors.torch import load_file

            self.best_state = load_file(str(latest / BEST_FILE))

    def _refill_cache(self, epoch: int, batch_in_epoch: int) -> None:
        """Rebuild the teacher cache an uninterrupted run holds at this checkpoint, by replaying the
        batches before it through ``teacher_targets`` (cached rows cost nothing; the teacher runs on
        the batches the cache could not serve, as it did the first time).

        The cache is not saved with a checkpoint (an LM's top-k cache can reach gigabytes), and it
        cannot simply refill as the resumed run goes: a row's teacher logits depend in their last bits
        on the batch they were computed in (its padding and neighbours), and a later epoch serves the
        row from the cache. Recomputed in the resumed run's batches they drift (MiniLM-L6 SST-2: 47 of
        57 student tensors differed, by up to 3e-7, after 5 resumed steps); replayed, they match.
        """
        if self.cache is None or (epoch == 0 and batch_in_epoch == 0):
            return
        shard = self.loader.batch_sampler  # this process's share of the bucketed batches
        total = epoch * len(shard) + batch_in_epoch
        if self.acc.is_main_process:
            progress.status(f"resuming: replaying {total} batches through the teacher cache")
        for current in range(epoch + 1):
            self.sampler.epoch = current
            for n, indices in enumerate(shard):
                if current == epoch and n >= batch_in_epoch:
                    break
                batch = {k: v.to(self.acc.device) for k, v in self.train_rows.collate(indices).items()}
                self.teacher_targets(batch)

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        acc, config, state = self.acc, self.config, self.state
        if config.resume:
            self.load_checkpoint()
            state = self.state
            if acc.is_main_process:
                progress.status(f"resuming from step {state.step} of {self.total_steps} ({self.checkpoint_dir})")
        per_step = config.batch_size * config.grad_accum * acc.num_processes  # samples, for the log lines' samples/s
        meter = progress.meter(self.total_steps, "distilling", initial=state.step, disable=not acc.is_main_process,
                               unit="step", samples_per_update=per_step)
        self.module.train()
        smoothed: float | None = None
        last_eval_step = state.curve[-1]["step"] if state.curve else None
        t0 = time.perf_counter()
        while state.step < self.total_steps:
            self.sampler.epoch = state.epoch
            loader = self.loader
            if state.batch_in_epoch:
                loader = acc.skip_first_batches(self.loader, state.batch_in_epoch)
            finished_epoch = True
            for batch in loader:
                with acc.accumulate(self.module):
                    targets = self.teacher_targets(batch)
                    out = self.module(**model_inputs(batch))
                    loss, parts = compute_losses(self.task, config, out, targets, batch)
                    value = loss.item()
                    self._check_loss(value, parts)
                    acc.backward(loss)
                    if acc.sync_gradients:
                        acc.clip_grad_norm_(self.module.parameters(), 1.0)
                    self.optimizer.step()
                    self.optimizer.zero_grad()
                state.batch_in_epoch += 1
                state.samples += len(batch["index"]) * acc.num_processes
                smoothed = value if smoothed is None else 0.95 * smoothed + 0.05 * value
                if not acc.sync_gradients:
                    continue
                self.scheduler.step()
                state.step += 1
                meter.set_postfix(loss=f"{smoothed:.4f}", **self._metric_postfix(), refresh=False)
                meter.update(1)  # after the postfix: a progress line shows this step's loss
                if config.eval_steps and state.step % config.eval_steps == 0:
                    state.train_seconds += time.perf_counter() - t0
                    self._eval_student()
                    last_eval_step = state.step
                    t0 = time.perf_counter()
                if config.checkpoint_steps and state.step % config.checkpoint_steps == 0 and state.step < self.total_steps:
                    state.train_seconds += time.perf_counter() - t0
                    self.save_checkpoint()
                    t0 = time.perf_counter()
                if state.step >= self.total_steps:
                    finished_epoch = False
                    break
            if finished_epoch:
                state.epoch += 1
                state.batch_in_epoch = 0
                if state.step != last_eval_step and state.step < self.total_steps:
                    state.train_seconds += time.perf_counter() - t0
                    self._eval_student()
                    last_eval_step = state.step
                    t0 = time.perf_counter()
        state.train_seconds += time.perf_counter() - t0
        if state.step != last_eval_step:
            self._eval_student()
        meter.close()
        if self.cache is not None and self.cache_file is not None:
            self.cache.save(self.cache_file)  # each process its own file (the key holds its index)
        return self.report()

    def _check_loss(self, value: float, parts: dict[str, float]) -> None:
        """A NaN/inf loss stops the run (exit 3): every later step would only spread it."""
        if not math.isfinite(value):
            lr = self.scheduler.get_last_lr()[0]
            finite.check_loss("distill", value, self.state.step + 1, parts,
                              f"lr {lr:.3g}; lower --lr, or check the data and the teacher")

    def check_student(self, student: nn.Module) -> None:
        finite.check_weights("distill", f"student at step {self.state.step}", student, "lower --lr")

    def _metric_postfix(self) -> dict[str, str]:
        if not self.state.curve:
            return {}
        return {self.metric[:3]: f"{self.state.curve[-1][self.metric]:.4g}"}

    def final_student(self) -> nn.Module:
        """The student to save: the best by the eval metric, else the last."""
        student = self.acc.unwrap_model(self.module).student
        if self.best_state is not None:
            student.load_state_dict(self.best_state)
        return student.eval()

    def report(self) -> dict[str, Any]:
        state = self.state
        return {
            "steps": state.step,
            "epochs": round(state.step / self.steps_per_epoch, 4),
            "steps_per_epoch": self.steps_per_epoch,
            "samples": state.samples,
            "train_seconds": round(state.train_seconds, 2),
            "samples_per_s": round(state.samples / state.train_seconds, 2) if state.train_seconds else None,
            "processes": self.acc.num_processes,
            "mixed_precision": self.acc.mixed_precision,
            "teacher_cache": self.cache.stats() if self.cache is not None else None,
            "eval_curve": state.curve,
            "best_step": state.best_step,
        }
