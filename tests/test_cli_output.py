"""What a command prints besides its results (rdmeval.cli.output): status lines, third-party noise held back.

Third-party code is simulated: a warning attributed to a file outside the rdmeval package, records on
a library's logger, and a fake library that sets up its own logger and progress-bar switch on first
import, as transformers and diffusers do. The demo test (tests/test_demo.py) checks the real libraries.
"""

from __future__ import annotations

import logging
import sys
import textwrap
import warnings

import pytest

import rdmeval
from rdmeval.cli import output
from rdmeval.cli.output import command_output, third_party_quiet

OWN_FILE = rdmeval.__file__  # a warning attributed to rdmeval itself


def test_third_party_warnings_are_held_back_and_counted_own_ones_are_shown(recwarn):
    with third_party_quiet() as hidden:
        warnings.warn_explicit("torch.meshgrid: pass the indexing argument", UserWarning, "/x/site-packages/torch/functional.py", 504)
        warnings.warn_explicit("torch.meshgrid: pass the indexing argument", UserWarning, "/x/site-packages/torch/functional.py", 504)
        warnings.warn_explicit("checkpoint is None", UserWarning, "/x/site-packages/mmdet/apis/inference.py", 70)
        warnings.warn_explicit("rdmeval's own", UserWarning, OWN_FILE, 1)
    assert [str(w.message) for w in recwarn] == ["rdmeval's own"]  # shown (here: to pytest's recorder)
    assert dict(hidden.messages) == {"UserWarning: torch.meshgrid: pass the indexing argument": 2,
                                     "UserWarning: checkpoint is None": 1}
    assert hidden.line() == "2 third-party warnings hidden; -v shows them"
    warnings.warn_explicit("after", UserWarning, "/x/site-packages/lib.py", 1)  # the command is over: shown again
    assert [str(w.message) for w in recwarn][-1] == "after"


def test_library_log_records_below_error_are_held_back_errors_pass(capsys):
    lib = logging.getLogger("transformers.modeling_utils")
    root = logging.getLogger("transformers")
    handler = logging.StreamHandler(sys.stderr)
    before = root.handlers[:], root.propagate
    root.addHandler(handler)
    try:
        with third_party_quiet() as hidden:
            lib.warning("Some weights were not initialized")
            lib.error("a real error")
        assert "Some weights" not in capsys.readouterr().err
        assert hidden.line() == "1 third-party warning hidden; -v shows them"
        assert root.handlers[-1] is handler  # restored
        lib.warning("shown after the command")
        assert "shown after the command" in capsys.readouterr().err
    finally:
        root.removeHandler(handler)
    assert (root.handlers, root.propagate) == before


FAKE_LOGGING = '''
    import logging
    _handler = None
    _bars = True
    log = logging.getLogger("fakelib")

    def get_verbosity():  # what transformers does on first use: its own handler, no propagation
        global _handler
        if _handler is None:
            _handler = logging.StreamHandler()
            log.addHandler(_handler)
            log.propagate = False
            log.setLevel(logging.WARNING)
        return log.level

    def is_progress_bar_enabled():
        return _bars

    def disable_progress_bar():
        global _bars
        _bars = False

    def enable_progress_bar():
        global _bars
        _bars = True
'''


@pytest.fixture
def fakelib(tmp_path, monkeypatch):
    pkg = tmp_path / "fakelib" / "utils"
    pkg.mkdir(parents=True)
    (tmp_path / "fakelib" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "logging.py").write_text(textwrap.dedent(FAKE_LOGGING))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(output, "SELF_CONFIGURING", (*output.SELF_CONFIGURING, "fakelib.utils.logging"))
    monkeypatch.setattr(output, "LIBRARY_LOGGERS", (*output.LIBRARY_LOGGERS, "fakelib"))
    yield
    for name in [m for m in sys.modules if m == "fakelib" or m.startswith("fakelib.")]:
        del sys.modules[name]
    logger = logging.getLogger("fakelib")
    logger.handlers, logger.propagate = [], True


def test_a_library_set_up_during_the_command_is_held_back_then_keeps_its_setup(fakelib, capsys):
    meta_path = sys.meta_path[:]
    with third_party_quiet() as hidden:
        import fakelib.utils.logging as fake  # first import: set up right after it, then held back

        assert fake._handler is not None and fake.is_progress_bar_enabled() is False
        logging.getLogger("fakelib.sub").warning("Loading weights ...")
    assert "Loading weights" not in capsys.readouterr().err and len(hidden.messages) == 1
    assert sys.meta_path == meta_path  # the import hook is gone
    assert logging.getLogger("fakelib").handlers == [fake._handler] and fake.is_progress_bar_enabled()
    logging.getLogger("fakelib.sub").warning("after the command")
    assert "after the command" in capsys.readouterr().err


def test_command_output_prints_status_lines_and_one_summary_line(capsys):
    log = logging.getLogger("rdmeval.generators.klein")
    with command_output(verbose=False):
        log.info("loading FLUX.2 [klein] teacher ...")
        log.warning("no CUDA device")
        warnings.warn_explicit("noise", UserWarning, "/x/site-packages/lib.py", 1)
    assert capsys.readouterr().err.splitlines() == [
        "rdmeval: loading FLUX.2 [klein] teacher ...", "rdmeval: warning: no CUDA device",
        "rdmeval: 1 third-party warning hidden; -v shows them"]
    log.info("a library user sees no INFO line")
    assert capsys.readouterr().err == ""


def test_verbose_holds_nothing_back(recwarn, caplog, capsys):
    with command_output(verbose=True):
        warnings.warn_explicit("noise", UserWarning, "/x/site-packages/lib.py", 1)
        logging.getLogger("diffusers.models").warning("a diffusers warning")
    assert [str(w.message) for w in recwarn] == ["noise"]  # on to whatever shows warnings (here pytest)
    assert "a diffusers warning" in caplog.text
    assert "hidden" not in capsys.readouterr().err


def test_no_progress_turns_the_hubs_download_bars_off_for_the_command():
    from huggingface_hub.utils import are_progress_bars_disabled

    from rdmeval.cli.main import build_parser
    from rdmeval.cli.output import wants_progress

    before = are_progress_bars_disabled()
    with command_output(verbose=False, progress=False):
        assert are_progress_bars_disabled()
    assert are_progress_bars_disabled() == before
    parse = build_parser().parse_args
    assert not wants_progress(parse(["generate", "--model", "dummy", "--prompts", "x", "--out", "o", "--no-progress"]))
    assert wants_progress(parse(["generate", "--model", "dummy", "--prompts", "x", "--out", "o"]))
    assert not wants_progress(parse(["demo"])) and wants_progress(parse(["demo", "--progress"]))
    assert wants_progress(parse(["audit", "--benchmark", "b", "--pool", "p", "--out", "o"]))  # default: a terminal decides


def test_building_the_parser_imports_neither_torch_nor_pandas() -> None:
    # the first status line of any command comes after the parser: it must not wait for torch (~1 s) or pandas
    import subprocess
    import sys

    code = ("import sys; from rdmeval.cli.main import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'pandas', 'diffusers', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_pickscore_defaults_match_the_model_module() -> None:
    from rdmeval.scorers.pickscore import defaults, model

    assert tuple(model.DTYPES) == defaults.DTYPE_NAMES
    assert model.DEFAULT_MODEL == defaults.DEFAULT_MODEL and model.IMAGE_BACKENDS == defaults.IMAGE_BACKENDS
