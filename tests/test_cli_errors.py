"""Every error a message: OS and library errors end in one line naming the path, exit code 2, no traceback."""

from __future__ import annotations

import errno
import shutil
import struct
import subprocess
import sys
import zlib

import pytest
from PIL import Image

from rdmeval.failures import explain, worker_error
from rdmeval.cli.main import main
from rdmeval.store import RunStore, WorkItem


def _gen(out, *extra, prompts="demo-captions") -> int:
    return main(["generate", "--model", "dummy", "--prompts", str(prompts), "--out", str(out),
                 "--resolution", "32", "--rng-device", "cpu", "--no-progress", *extra])


def _one_line(err: str) -> str:
    """The error: stderr's last line and its only error line; any line before it is an rdmeval status line
    (``rdmeval: loading ...``, rdmeval.cli.output), never a traceback or a library's output."""
    lines = err.strip().splitlines()
    assert lines and "Traceback" not in err, err
    assert all(line.startswith("rdmeval: ") and not line.startswith("rdmeval: error: ") for line in lines[:-1]), err
    assert lines[-1].startswith("rdmeval: error: ")
    return lines[-1]


def test_out_that_is_an_existing_file(tmp_path, capsys):
    out = tmp_path / "results.txt"
    out.write_text("not a run")
    assert _gen(out) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(out) in line and "choose another path" in line
    assert out.read_text() == "not a run"


def test_out_below_a_file_and_a_folder_given_as_prompt_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert _gen(tmp_path / "f" / "run") == 2
    assert "a part of this path is a file where a folder is expected" in _one_line(capsys.readouterr().err)
    folder = tmp_path / "prompts.txt"
    folder.mkdir()
    assert _gen(tmp_path / "run", prompts=folder) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(folder) in line and "folder where a file is expected" in line


def test_full_disk_while_writing_names_the_file(tmp_path, capsys, monkeypatch):
    import rdmeval.io.atomic as atomic

    def full(fd):  # what fsync/write raise on a full disk: an OSError without a file name
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    assert _gen(tmp_path / "run") == 2
    line = _one_line(capsys.readouterr().err)
    assert f"{tmp_path / 'run' / 'manifest.json'}: No space left on device; the disk is full" in line
    assert not [p for p in (tmp_path / "run").rglob("*.tmp")]  # the temporary file is removed


def test_out_file_that_is_a_folder_names_it_not_the_temporary_file(tmp_path, capsys):
    assert _gen(tmp_path / "runs" / "dummy" / "demo-captions") == 0  # a run root (not scored: the table says so)
    folder = tmp_path / "table.md"
    folder.mkdir()
    capsys.readouterr()
    assert main(["table", str(tmp_path), "--out", str(folder)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"error: {folder}: " in line and "folder where a file is expected" in line and ".tmp" not in line, line
    assert list(folder.iterdir()) == [] and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_read_only_folder_names_it(tmp_path, capsys, monkeypatch):
    import rdmeval.io.atomic as atomic

    def denied(prefix, suffix, dir):  # tests run as root, where chmod does not stop writes: simulate it
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", denied)
    assert _gen(tmp_path / "run") == 2
    line = _one_line(capsys.readouterr().err)
    assert f"{tmp_path / 'run'}: Permission denied; permission denied: choose a location you may write to" in line


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("part, damage, words", [
    ("transformer/config.json", b"{broken", "is not a valid JSON file; the file is corrupt or truncated"),
    ("text_encoder/model.safetensors", None, "cannot be read (SafetensorError"),
    ("tokenizer/tokenizer.json", b"garbage{", "cannot be read (JSONDecodeError"),
])
def test_corrupt_file_inside_a_base_pipeline_folder(tiny_klein, tmp_path, capsys, part, damage, words):
    base = tmp_path / "base"
    shutil.copytree(tiny_klein["base"], base)
    target = base / part
    target.write_bytes(damage if damage is not None else target.read_bytes()[:100])
    argv = ["generate", "--model", "naive", "--base", str(base), "--prompts", "demo-captions", "--out", str(tmp_path / "run"),
            "--resolution", "32", "--device", "cpu", "--rng-device", "cpu", "--precision", "fp32", "--no-progress"]
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(target) in line and words in line and "replace it" in line


def test_corrupt_image_read_in_a_dataloader_worker(tmp_path, tiny_clip, capsys):
    run = tmp_path / "run"
    assert _gen(run, "--resolution", "64") == 0
    capsys.readouterr()
    bad = RunStore(run).image_path(WorkItem(2, 0))
    # Corrupt the pixel data but keep every chunk checksum right: the scorer's up-front check (PIL verify,
    # which catches truncated or plainly corrupt files before any model work) passes, decoding in the worker fails.
    data = bytearray(bad.read_bytes())
    at = data.index(b"IDAT")
    (length,) = struct.unpack(">I", data[at - 4 : at])
    for k in range(at + 6, at + 4 + length, 7):
        data[k] ^= 0x5A
    data[at + 4 + length : at + 8 + length] = struct.pack(">I", zlib.crc32(bytes(data[at : at + 4 + length])))
    bad.write_bytes(bytes(data))
    with Image.open(bad) as im:
        im.verify()
    argv = ["score", "pickscore", str(run), "--model", str(tiny_clip), "--processor", str(tiny_clip),
            "--workers", "1", "--no-progress", "--n-resamples", "10"]
    assert main(argv) == 2
    err = capsys.readouterr().err  # transformers' weight-loading progress bar may come first
    line = _one_line(err[err.index("rdmeval: error: "):])
    assert line.startswith(f"rdmeval: error: {bad}: cannot be decoded") and "DataLoader" not in line


def test_verbose_and_debug_show_the_traceback(tmp_path, capsys, monkeypatch):
    out = tmp_path / "file"
    out.write_text("x")
    assert main(["-v", "generate", "--model", "dummy", "--prompts", "demo-captions", "--out", str(out)]) == 2
    assert "Traceback" in capsys.readouterr().err
    assert _gen(out, "-v") == 2  # -v also after the subcommand
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("RDMEVAL_DEBUG", "1")
    assert _gen(out) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("rdmeval: error: ")


def test_subprocess_exit_code_and_single_line(tmp_path):
    out = tmp_path / "file"
    out.write_text("x")
    proc = subprocess.run([sys.executable, "-m", "rdmeval", "generate", "--model", "dummy", "--prompts", "demo-captions",
                           "--out", str(out), "--no-progress"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert _one_line(proc.stderr).startswith(f"rdmeval: error: {out}: ")


def test_unexpected_errors_stay_bugs_and_worker_text_is_unwrapped():
    assert explain(TypeError("unsupported operand")) is None and explain(KeyError("x")) is None
    wrapped = ("Caught RunStoreError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
               '  File "x.py", line 1, in f\n    raise RunStoreError(msg)\nrdmeval.errors.RunStoreError: /r/a.png: cannot decode\n')
    assert worker_error(wrapped) == "/r/a.png: cannot decode"
    assert worker_error("plain message") == "plain message"


def test_a_misspelt_run_directory_is_said_to_be_missing(tmp_path, capsys):
    for scorer in ("geneval", "pickscore"):
        assert main(["score", scorer, str(tmp_path / "runs" / "studnet")]) == 2
        line = _one_line(capsys.readouterr().err)
        assert "studnet: no such file or folder" in line and "generate it" not in line, line
    (tmp_path / "empty").mkdir()
    assert main(["score", "pickscore", str(tmp_path / "empty")]) == 2
    assert "not a run directory" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("module, argv, said", [
    ("generate", ["generate", "--model", "dummy", "--prompts", "demo-geneval", "--out", "r"], "completed images are kept"),
    ("score_pickscore", ["score", "pickscore", "r"], "scores computed so far are kept"),
    ("table", ["table", "root"], "nothing is half-written; run the same command again"),
    ("audit", ["audit", "--benchmark", "geneval", "--pool", "demo", "--out", "a"], "nothing is half-written"),
])
def test_ctrl_c_says_what_the_stopped_command_leaves(monkeypatch, capsys, module, argv, said):
    import importlib

    from rdmeval.cli.main import main

    def stopped(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module(f"rdmeval.cli.{module}"), "run", stopped)
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err.startswith("rdmeval: interrupted; ") and said in err
    assert ("images" in err) == (module == "generate")  # only an image run keeps images
