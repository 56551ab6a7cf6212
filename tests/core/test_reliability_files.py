"""Reliability with files (issue #16): stale temporaries of killed runs, scratch space, non-UTF-8
metadata, unwritable output locations, BOMs, headerless tables, progress in CI logs.

Each failure case checks the CLI contract: the exit code, one line naming the culprit, no traceback,
nothing at the output path or in hidden siblings, the inputs unchanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import tree_hash
from compressor import progress, scratch
from compressor.data import DataSpec, load_classification, load_texts, read_table


def dead_pid() -> int:
    """The PID of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def one_error_line(result, *fragments: str) -> str:
    """The single ``compress: error:`` line of a failed run; it contains every fragment."""
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("compress: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def hidden_siblings(parent: Path, name: str = "out") -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


# ---------------------------------------------------------------------- 1. stale temporary siblings


def _fake_sibling(parent: Path, name: str, size: int = 230_000) -> Path:
    directory = parent / name
    (directory / "sub").mkdir(parents=True)
    (directory / "sub" / "model.onnx").write_bytes(b"\0" * size)
    return directory


def test_stale_siblings_of_dead_runs_are_removed_and_reported(tmp_path, monkeypatch, capsys):
    dead = dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = [
            _fake_sibling(tmp_path, f".out.tmp-{dead}-ab12cd34"),
            _fake_sibling(tmp_path, f".out.tmp-{dead}-ab12cd34.scratch"),
            _fake_sibling(tmp_path, f".out.old-{dead}-0123abcd"),
            _fake_sibling(tmp_path, ".out.old-89abcdef"),  # an older version's name, without the PID
        ]
        kept = [
            _fake_sibling(tmp_path, f".out.tmp-{live.pid}-ffffffff"),  # a run writing `out` right now
            _fake_sibling(tmp_path, f".out.tmp-{os.getpid()}-eeeeeeee"),  # this very process
            _fake_sibling(tmp_path, ".out.checkpoints"),  # distill's --resume checkpoints: not temporary
            _fake_sibling(tmp_path, f".other.tmp-{dead}-ab12cd34"),  # another output's: not ours to judge
            _fake_sibling(tmp_path, f".out.tmp-{dead}-notahex!"),  # not a name this tool writes
        ]
        removed = scratch.remove_stale_siblings(tmp_path / "out")
    finally:
        live.kill()
        live.wait()
    assert sorted(removed) == sorted(stale)
    assert all(not p.exists() for p in stale) and all(p.exists() for p in kept)
    err = capsys.readouterr().err
    assert f"removed stale .out.tmp-{dead}-ab12cd34 left by a killed run (0.2 MB)" in err
    assert len(err.strip().splitlines()) == 4


def test_a_permission_error_means_alive(monkeypatch):
    def kill(pid, sig):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", kill)
    assert scratch.process_alive(1)
    monkeypatch.setattr(os, "kill", lambda pid, sig: (_ for _ in ()).throw(ProcessLookupError()))
    assert not scratch.process_alive(123456)


def test_export_removes_the_stale_sibling_of_its_own_output(run_cli, tiny_bert_dir, tmp_path):
    dead = dead_pid()
    stale = _fake_sibling(tmp_path, f".out.tmp-{dead}-ab12cd34", size=2_000_000)
    other = _fake_sibling(tmp_path, f".elsewhere.tmp-{dead}-ab12cd34")
    result = run_cli("export-onnx", tiny_bert_dir, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert f"removed stale .out.tmp-{dead}-ab12cd34 left by a killed run (2.0 MB)" in result.stderr
    assert not stale.exists() and other.exists()
    assert hidden_siblings(tmp_path) == [] and (tmp_path / "out" / "model.onnx").is_file()


def test_force_keeps_the_previous_output_when_the_swap_fails(tmp_path, monkeypatch):
    from compressor.artifact import staged_output

    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep").write_text("old")
    rename = Path.rename

    def failing(self, target):
        if self.name.startswith(".out.tmp-"):
            raise OSError(28, "No space left on device")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", failing)
    with pytest.raises(OSError):
        with staged_output(dst, sources=[], force=True) as tmp:
            (tmp / "new").write_text("new")
    assert sorted(p.name for p in dst.iterdir()) == ["keep"] and hidden_siblings(tmp_path) == []
    monkeypatch.setattr(Path, "rename", rename)
    with staged_output(dst, sources=[], force=True) as tmp:
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in dst.iterdir()) == ["new"] and hidden_siblings(tmp_path) == []


# ---------------------------------------------------------------------- 2. quantize scratch space


@pytest.fixture(scope="module")
def bert_onnx(tiny_bert_dir, tmp_path_factory):
    from compressor.export import ExportConfig, export_onnx

    out = tmp_path_factory.mktemp("rel") / "bert-onnx"
    export_onnx(tiny_bert_dir, out, ExportConfig(optimize="O0"))
    return out


def test_quantize_scratch_lives_beside_the_output_not_in_the_system_temp(run_cli, bert_onnx, sst_file, tmp_path,
                                                                        monkeypatch):
    from compressor.quantize import onnx_ort

    system_temp = tmp_path / "tmp"
    system_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    seen = {}
    calibrate = onnx_ort.OnnxEngine.calibrate

    def spy(self, batches):
        seen["workdir"], seen["tempfile"] = self.workdir, tempfile.gettempdir()
        seen["siblings"] = hidden_siblings(tmp_path)
        return calibrate(self, batches)

    monkeypatch.setattr(onnx_ort.OnnxEngine, "calibrate", spy)
    before = tree_hash(bert_onnx)
    result = run_cli("quantize", bert_onnx, "-o", tmp_path / "out", "--method", "int8-static",
                     "--calib-data", sst_file, "--calib-samples", "8")
    assert result.exit_code == 0, result.output
    workdir = seen["workdir"]
    assert workdir.parent == tmp_path and workdir.name.startswith(".out.tmp-") and workdir.name.endswith(".scratch")
    assert seen["tempfile"] == str(workdir)  # onnxruntime's own ort.quant.* files go there too
    assert len(seen["siblings"]) == 2  # the output being written and its scratch space
    assert list(system_temp.iterdir()) == [] and hidden_siblings(tmp_path) == []
    assert tempfile.gettempdir() == str(system_temp)  # restored
    assert not list((tmp_path / "out").glob("*scratch*")) and (tmp_path / "out" / "model.onnx").is_file()
    assert tree_hash(bert_onnx) == before


def test_export_optimizer_temp_files_live_in_the_scratch_space(run_cli, tiny_bert_dir, tmp_path, monkeypatch):
    from compressor.export import stage

    system_temp = tmp_path / "tmp"
    system_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    seen = {}
    optimize = stage._optimize

    def spy(onnx_dir, config, *args):
        seen["tempfile"] = Path(tempfile.gettempdir())  # where onnxruntime's optimizer puts its model copy
        return optimize(onnx_dir, config, *args)

    monkeypatch.setattr(stage, "_optimize", spy)
    result = run_cli("export-onnx", tiny_bert_dir, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert seen["tempfile"].parent == tmp_path and seen["tempfile"].name.startswith(".out.tmp-")
    assert seen["tempfile"].name.endswith(".scratch")
    assert list(system_temp.iterdir()) == [] and hidden_siblings(tmp_path) == []


def test_system_temp_dirs_of_dead_processes_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = dead_pid()
    stale = _fake_sibling(tmp_path, f"compress-profile-{dead}-x1y2z3")
    mine = _fake_sibling(tmp_path, f"compress-profile-{os.getpid()}-abc")
    other_kind = _fake_sibling(tmp_path, f"compress-mem-{dead}-abc")
    with scratch.temp_dir("profile") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(f"compress-profile-{os.getpid()}-")
    assert not tmp.exists() and not stale.exists() and mine.exists() and other_kind.exists()


# ---------------------------------------------------------------------- 4. non-UTF-8 metadata


@pytest.mark.parametrize("name", ["compress.json", "config.json"])
@pytest.mark.parametrize("command", ["inspect", "export-onnx"])
def test_metadata_that_is_not_utf8(run_cli, bert_copy, tmp_path, name, command):
    path = bert_copy / name
    text = path.read_text() if path.exists() else '{"format": "pytorch", "family": "bert", "task": "x"}'
    path.write_bytes(text.replace('"', '"\xe9', 1).encode("latin-1"))
    before = tree_hash(bert_copy)
    args = ["-o", tmp_path / "out"] if command == "export-onnx" else []
    result = run_cli(command, bert_copy, *args)
    assert result.exit_code == 2
    one_error_line(result, f"{path}: not valid JSON", "0xe9" if name == "config.json" else "not UTF-8 text")
    assert tree_hash(bert_copy) == before
    assert not (tmp_path / "out").exists() and hidden_siblings(tmp_path) == []


# ---------------------------------------------------------------------- 5. unwritable output location


@pytest.fixture
def read_only_dir(tmp_path, monkeypatch):
    """A directory nobody may create entries in: chmod 555, and for root (who may anyway) ``os.access``
    answers as for anyone else, so the tool's explicit check is what refuses it."""
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o555)
    if os.geteuid() == 0:
        real = os.access

        def access(path, mode, *args, **kwargs):
            if Path(path).resolve() == directory.resolve() and mode & os.W_OK:
                return False
            return real(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)
    yield directory
    directory.chmod(0o755)


def _no_work(monkeypatch) -> None:
    """Loading a model is the start of the work; the checks must come before it."""
    import compressor.bench.stage
    import compressor.distill.stage
    import compressor.export.stage
    import compressor.prune.stage
    import compressor.quantize.stage

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the output location was checked")

    import compressor.loading

    # Stages import load_model by name; quantize's engines reach it through compressor.loading.
    for module in (compressor.bench.stage, compressor.distill.stage, compressor.export.stage, compressor.prune.stage,
                   compressor.loading):
        monkeypatch.setattr(module, "load_model", refuse)


def _command(name: str, tiny_bert_dir: Path, sst_file: Path, out: Path) -> list:
    return {
        "export-onnx": ["export-onnx", tiny_bert_dir, "-o", out],
        "quantize": ["quantize", tiny_bert_dir, "-o", out, "--method", "int8-dynamic"],
        "distill": ["distill", tiny_bert_dir, "-o", out, "--data", sst_file, "--student-layers", "2"],
        "prune": ["prune", tiny_bert_dir, "-o", out, "--method", "heads=0.25"],
        "bench": ["bench", tiny_bert_dir, "--baseline", tiny_bert_dir, "--data", sst_file, "--no-memory",
                  "--report-dir", out],
    }[name]


COMMANDS = ["export-onnx", "quantize", "distill", "prune", "bench"]


@pytest.mark.parametrize("command", COMMANDS)
def test_output_under_a_read_only_directory(run_cli, tiny_bert_dir, sst_file, read_only_dir, monkeypatch, command):
    _no_work(monkeypatch)
    before = tree_hash(tiny_bert_dir)
    out = read_only_dir / "out"
    result = run_cli(*_command(command, tiny_bert_dir, sst_file, out))
    assert result.exit_code == 2
    line = one_error_line(result, f"{read_only_dir}: directory is not writable")
    assert ("--report-dir " in line) == (command == "bench")
    assert list(read_only_dir.iterdir()) == [] and tree_hash(tiny_bert_dir) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_output_under_a_file(run_cli, tiny_bert_dir, sst_file, tmp_path, monkeypatch, command):
    """A file where a parent directory should be stops even root."""
    _no_work(monkeypatch)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli(*_command(command, tiny_bert_dir, sst_file, blocker / "sub" / "out"))
    assert result.exit_code == 2
    one_error_line(result, f"{blocker}: is not a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"] and blocker.read_text() == "x"


def test_distill_checkpoint_dir_checked_before_training(run_cli, tiny_bert_dir, sst_file, tmp_path, read_only_dir,
                                                        monkeypatch):
    _no_work(monkeypatch)
    result = run_cli("distill", tiny_bert_dir, "-o", tmp_path / "out", "--data", sst_file, "--student-layers", "2",
                     "--checkpoint-steps", "2", "--checkpoint-dir", read_only_dir / "ckpt")
    assert result.exit_code == 2
    one_error_line(result, f"--checkpoint-dir {read_only_dir}: directory is not writable")
    assert hidden_siblings(tmp_path) == [] and not (tmp_path / "out").exists()


def test_writable_locations_still_work(tmp_path):
    from compressor.artifact import check_can_create, check_writable_dir

    check_can_create(tmp_path / "a" / "b" / "out")  # parents made later by mkdir -p
    check_writable_dir(tmp_path / "reports")
    check_writable_dir(tmp_path)


# ---------------------------------------------------------------------- 6. byte-order marks


@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".jsonl", ".txt"])
def test_utf8_bom_is_dropped(tmp_path, suffix):
    path = tmp_path / f"data{suffix}"
    body = {
        ".tsv": "Quality\tsentence\n1\tthe film was good\n",
        ".csv": "Quality,sentence\n1,the film was good\n",
        ".jsonl": '{"Quality": 1, "sentence": "the film was good"}\n',
        ".txt": "the film was good\n",
    }[suffix]
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    columns, rows = read_table(path)
    first = "text" if suffix == ".txt" else "Quality"
    assert columns[0] == first and first in rows[0]
    assert not any("\ufeff" in str(v) for row in rows for v in list(row) + list(row.values()))


def test_mrpc_with_bom_reads_its_columns(run_cli, tiny_bert_dir, tmp_path):
    """MRPC's train.tsv starts with a BOM; the pair columns are named with --text-column etc."""
    data = tmp_path / "mrpc.tsv"
    data.write_bytes(b"\xef\xbb\xbf" + "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n".encode()
                     + b"1\t702876\t702977\tthe film was good\tthe film was fine\n"
                     + b"0\t2108705\t2108831\tthe plot was dull\tthe cast was warm\n")
    spec = DataSpec(str(data), text_column="#1 String", text_pair_column="#2 String", label_column="Quality")
    loaded = load_classification(spec, label2id={"0": 0, "1": 1}, require_labels=True)
    assert loaded.labels == [1, 0] and loaded.pairs == ["the film was fine", "the cast was warm"]


# ---------------------------------------------------------------------- 7. headerless tables

COLA = "gj04\t1\t\tOur friends won't buy this analysis, let alone the next one we propose.\n" \
       "gj04\t1\t\tOne more pseudo generalization and I'm giving up.\n" \
       "gj04\t0\t*\tThey drank the pub.\n"


@pytest.mark.parametrize("command", ["distill", "prune", "export-onnx"])
def test_headerless_cola_says_the_first_row_is_data(run_cli, tiny_bert_dir, tmp_path, command):
    data = tmp_path / "cola.tsv"
    data.write_text(COLA)
    out = tmp_path / "out"
    args = {
        "distill": ["distill", tiny_bert_dir, "-o", out, "--data", data, "--student-layers", "2"],
        "prune": ["prune", tiny_bert_dir, "-o", out, "--method", "heads=0.25", "--data", data],
        "export-onnx": ["export-onnx", tiny_bert_dir, "-o", out, "--parity-data", data],
    }[command]
    result = run_cli(*args)
    assert result.exit_code == 2
    line = one_error_line(result, str(data), "the first row looks like data rather than a header",
                          "column name '1' is a number", "--no-header", "--text-column INDEX --label-column INDEX")
    assert "LM text cannot train a classifier" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cola.tsv"]


def test_headerless_corpus_for_a_language_model(run_cli, tiny_gpt2_dir, tmp_path):
    data = tmp_path / "lm.csv"
    data.write_text("The first line of a story that goes on and on for a while,7\nanother,8\n")
    result = run_cli("distill", tiny_gpt2_dir, "-o", tmp_path / "out", "--data", data)
    assert result.exit_code == 2
    one_error_line(result, "no text column, and the first row looks like data", "'7' is a number")


@pytest.mark.parametrize("columns, reason", [
    (["gj04", "1", "", "Our friends won't buy this analysis."], "'1' is a number"),
    (["a", "-0.5"], "'-0.5' is a number"),
    (["x", "the whole sentence is here and it is long"], "reads like a sentence"),
    (["good", "good"], "'good' appears 2 times"),
])
def test_header_that_looks_like_data(columns, reason):
    from compressor.data.datasets import header_looks_like_data

    assert reason in header_looks_like_data("f.tsv", columns)
    assert header_looks_like_data("f.parquet", columns) is None  # named by whoever wrote the table


@pytest.mark.parametrize("columns", [["sentence", "label"], ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                                     ["", "text", "label"], ["question", "sentence", "label", "idx"]])
def test_real_headers_do_not(columns):
    from compressor.data.datasets import header_looks_like_data

    assert header_looks_like_data("f.tsv", columns) is None


def test_a_header_that_looks_fine_keeps_the_old_message(tmp_path):
    data = tmp_path / "d.tsv"
    data.write_text("body\tlabel\ngood\t1\n")
    with pytest.raises(Exception, match=r"no text column \(looked for") as info:
        load_texts(DataSpec(str(data)))
    assert "looks like data" not in str(info.value)


# ---------------------------------------------------------------------- 8. progress in CI logs


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Captured:
    def __init__(self, capsys) -> None:
        self.capsys = capsys

    def getvalue(self) -> str:
        return self.capsys.readouterr().err


@pytest.fixture
def log_stderr(monkeypatch, capsys):
    """stderr as in a CI log (captured: not a terminal), a fake clock and a 30 s interval."""
    clock = FakeClock()
    monkeypatch.setattr(progress, "_clock", clock)
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 30.0)
    monkeypatch.setattr(progress, "_quiet", False)
    assert not sys.stderr.isatty()
    return Captured(capsys), clock


def test_meter_logs_step_loss_rate_and_eta_every_interval(log_stderr):
    stream, clock = log_stderr
    meter = progress.meter(100, "distilling", initial=10, unit="step", samples_per_update=32)
    for step in range(11, 101):
        clock.now += 2.5  # 2.5 s a step
        meter.update(1)
        meter.set_postfix(loss=f"{1 / step:.4f}", refresh=False)
    meter.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "distilling: step 22/100 (22%), loss 0.0476, 12.8 samples/s, ETA 3m15s"
    assert len(lines) == 8  # every 12 steps (30 s), and the last one at close
    assert lines[-1] == "distilling: step 100/100 (100%), loss 0.0100, 12.8 samples/s, done in 3m45s"


def test_short_loops_and_quiet_print_nothing(log_stderr, monkeypatch):
    stream, clock = log_stderr
    meter = progress.meter(5, "distilling")
    for _ in range(5):
        clock.now += 1.0
        meter.update(1)
    meter.close()
    assert list(progress.bar(range(3), desc="evaluating")) == [0, 1, 2]
    monkeypatch.setattr(progress, "_quiet", True)
    meter = progress.meter(5, "distilling")
    clock.now += 100
    meter.update(5)
    meter.close()
    assert stream.getvalue() == ""
    assert progress.meter(5, "x", disable=True).disable  # another process's meter: a silent tqdm


def test_bar_logs_too(log_stderr):
    stream, clock = log_stderr
    for _ in progress.bar([1, 2, 3, 4], desc="evaluating"):
        clock.now += 20.0
    assert stream.getvalue().splitlines() == [
        "evaluating: 2/4 (50%), 0.05 it/s, ETA 40s",
        "evaluating: 4/4 (100%), 0.05 it/s, done in 1m20s",
    ]


def test_distillation_in_a_ci_log_prints_progress_lines(run_cli, tiny_bert_dir, sst_file, tmp_path, monkeypatch):
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.0)  # a line at every step
    result = run_cli("distill", tiny_bert_dir, "-o", tmp_path / "out", "--data", sst_file, "--student-layers", "2",
                     "--max-steps", "3", "--batch-size", "16")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("distilling: step")]
    assert [line.split(",")[0] for line in lines] == [f"distilling: step {n}/3 (" + f"{100 * n / 3:.0f}%)"
                                                      for n in (1, 2, 3)]
    assert all(" loss " in line and " samples/s" in line for line in lines)
    assert "ETA" in lines[0] and "done in" in lines[-1]
    quiet = run_cli("-q", "distill", tiny_bert_dir, "-o", tmp_path / "quiet", "--data", sst_file,
                    "--student-layers", "2", "--max-steps", "2", "--batch-size", "16")
    assert quiet.exit_code == 0 and "distilling: step" not in quiet.stderr
    shutil.rmtree(tmp_path / "quiet")


def test_rates_and_durations_read_plainly():
    assert [progress._number(x) for x in (0.05, 12.8, 587.4, 12345.6)] == ["0.05", "12.8", "587", "12346"]
    assert [progress._duration(s) for s in (9.6, 75, 3725)] == ["10s", "1m15s", "1h02m"]
