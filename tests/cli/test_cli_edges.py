"""Command-line edge cases: ``~`` in paths, Ctrl-C while starting, seeds, wrong bundle folders,
exporting a study whose search still runs, and dumb terminals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from autocompress.cli.main import build_parser, main


def test_a_leading_tilde_names_the_home_folder_in_every_path_flag(tmp_path, monkeypatch):
    """A quoted '~/x' (or --out=~/x, which no shell expands) made a folder named '~' in the working one."""
    monkeypatch.setenv("HOME", str(tmp_path))
    parser = build_parser()
    search = parser.parse_args(["search", "--target", "~/my.toml", "--gpt", "~/g.ckpt", "--sovits", "~/s.pth",
                                "--data", "~/logs/me", "--out=~/exports", "--artifacts", "~/a", "--space", "~/sp.toml"])
    for value in (search.target, search.gpt, search.sovits, search.data, search.out, search.artifacts, search.space):
        assert str(value).startswith(str(tmp_path)), value
    export = parser.parse_args(["export", "--study", "s", "--target", "rtx3060", "--out", "~/e", "--artifacts", "~/a"])
    assert export.out == tmp_path / "e" and export.artifacts == tmp_path / "a"
    synth = parser.parse_args(["synth", "--bundle", "~/b", "--out", "~/x.wav", "--ref-spec", "~/r.npy",
                               "--ref-sv", "~/sv.npy"])
    assert [synth.bundle, synth.out, synth.ref_spec, synth.ref_sv] == [
        str(tmp_path / n) for n in ("b", "x.wav", "r.npy", "sv.npy")]
    assert parser.parse_args(["targets", "~/my.toml"]).name == str(tmp_path / "my.toml")
    assert parser.parse_args(["search", "--target", "RTX 3060"]).target == "RTX 3060"  # names stay names


def test_ctrl_c_while_the_commands_load_exits_130_without_a_traceback(monkeypatch, capsys):
    """Importing the commands takes seconds; a Ctrl-C then printed a traceback and died of SIGINT."""
    import autocompress.cli.main as cli

    def interrupted(name: str):  # noqa: ANN202
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.importlib, "import_module", interrupted)
    assert main(["targets"]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_sigterm_stops_the_schedule_daemon_with_status_143(tmp_path, monkeypatch, capsys):
    """``autocompress daemon`` stopped by SIGTERM (systemd, kill) exited 130, Ctrl-C's status."""
    import signal

    import autocompress.schedule as schedule_api

    def loop(storage, poll_s):  # noqa: ANN001, ANN202
        signal.raise_signal(signal.SIGTERM)  # raised here as Terminated, under the command's handler
        raise AssertionError("SIGTERM did not stop the daemon")

    monkeypatch.setattr(schedule_api, "daemon_loop", loop)
    assert main(["daemon", "--storage", f"sqlite:///{tmp_path}/s.db"]) == 143
    assert capsys.readouterr().err == "interrupted\n"
    monkeypatch.setattr(schedule_api, "daemon_loop", lambda storage, poll_s: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["daemon", "--storage", f"sqlite:///{tmp_path}/s.db"]) == 130  # Ctrl-C


def test_a_scheduled_run_stopped_by_sigterm_is_recorded_with_status_143(tmp_path):
    """The schedule's history recorded 130 (Ctrl-C's status) for a run SIGTERM stopped."""
    import signal

    from autocompress.interrupts import Terminated
    from autocompress.schedule import ScheduleSpec, add_schedule, history, run_schedule, sigterm_interrupts

    url = f"sqlite:///{tmp_path}/s.db"
    spec = ScheduleSpec("n", "* * * * *", ("--target", "cpu"), 60)
    add_schedule(url, spec)

    def terminated(_spec):  # noqa: ANN001, ANN202
        signal.raise_signal(signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt the run")

    with pytest.raises(Terminated), sigterm_interrupts():
        run_schedule(url, spec, runner=terminated)
    (rec,) = history(url, "n")
    assert (rec.status, rec.exit_code) == ("interrupted", 143) and "SIGTERM" in rec.error


def test_synth_seed_is_refused_in_one_line_where_the_generators_cannot_take_it(tmp_path, capsys):
    """--demo --seed 2**64 ended in torch's 'Overflow when unpacking long long' traceback."""
    with pytest.raises(SystemExit) as e:
        main(["synth", "--demo", "--text", "Hi.", "--seed", str(2**64), "--out", str(tmp_path / "x.wav")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --seed: must be at most 18446744073709551615" in err and err.count("\n") == 1
    args = build_parser().parse_args(["synth", "--demo", "--out", "x.wav", "--seed", str(2**64 - 1)])
    assert args.seed == 2**64 - 1


def test_synth_says_what_a_folder_that_is_not_a_bundle_is(tmp_path, capsys):
    """An export folder or a checkpoint export given as --bundle: say which, and what to pass."""
    export = tmp_path / "exports"
    (export / "trial-0003").mkdir(parents=True)
    (export / "trial-0003" / "manifest.json").write_text("{}")
    (export / "pareto.json").write_text("{}")
    assert main(["synth", "--bundle", str(export), "--out", str(tmp_path / "x.wav")]) == 2
    err = capsys.readouterr().err
    assert "an export folder, not a bundle" in err and f"e.g. {export / 'trial-0003'}" in err
    checkpoint = tmp_path / "ck" / "trial-0001"
    checkpoint.mkdir(parents=True)
    for name in ("plan.json", "gpt.ckpt", "sovits.pth"):
        (checkpoint / name).write_text("x")
    assert main(["synth", "--bundle", str(checkpoint), "--out", str(tmp_path / "x.wav")]) == 2
    assert "a checkpoint export" in capsys.readouterr().err


def test_synth_names_the_capped_pieces_as_ranges():
    """A long text whose 64 pieces all hit the code limit listed 64 numbers on the line."""
    from autocompress.cli.synth_cmd import stop_summary

    capped = "max_new_tokens"
    assert stop_summary([capped] * 64) == "max_new_tokens in pieces 1-64 of 64"
    assert stop_summary([capped, capped, "eos", capped, "eos"]) == "max_new_tokens in pieces 1-2, 4 of 5"
    assert stop_summary(["eos", capped]) == "max_new_tokens in piece 2 of 2"
    assert stop_summary(["eos", "eos"]) == "eos" and stop_summary([capped]) == "max_new_tokens"



def test_synth_says_plainly_that_capped_pieces_were_cut_short_and_which_flag_raises_the_limit(tmp_path, capsys):
    """The output said only "(max_new_tokens in pieces 1-8 of 8)": nothing told the user the
    sentences were cut off, nor how to let the GPT speak them whole."""
    import numpy as np

    from autocompress.cli.synth_cmd import write_pieces

    out = str(tmp_path / "x.wav")
    wavs = [np.zeros(640, dtype=np.float32)] * 3
    write_pieces(out, wavs, 32000, [500, 120, 500], ["max_new_tokens", "eos", "max_new_tokens"], 0.1, "here")
    captured = capsys.readouterr()
    assert captured.out.count("\n") == 1 and captured.err.count("\n") == 1
    assert "pieces 1, 3 of 3" in captured.err and "cut short" in captured.err
    assert "--max-tokens" in captured.err and "500" in captured.err
    write_pieces(out, wavs[:1], 32000, [40], ["max_new_tokens"], 0.1, "here")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cut short" in err and "--max-tokens" in err and "pieces" not in err
    write_pieces(out, wavs[:2], 32000, [40, 30], ["eos", "eos"], 0.1, "here")
    assert capsys.readouterr().err == ""  # every piece ended by itself: nothing to say

def _study_with_a_running_search(tmp_path: Path) -> str:
    import optuna

    from autocompress.store import Store

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    optuna.create_study(study_name="live", storage=url, directions=["maximize", "minimize", "minimize"])
    store = Store(url)
    store.start_run(study_name="live", target="rtx3060", space_name="x", space_sha256="0" * 64, voice="demo",
                    settings={}, device_info={})  # this process: alive
    store.close()
    return url


def test_export_of_a_study_whose_search_still_runs_says_so(tmp_path, capsys, monkeypatch):
    url = _study_with_a_running_search(tmp_path)
    out = tmp_path / "out"
    assert main(["export", "--study", "live", "--target", "rtx3060", "--storage", url, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: a search of study live is still running" in err and "the front as it is now" in err
    assert json.loads((out / "pareto.json").read_text())["study"] == "live"

    from autocompress import search
    from autocompress.exceptions import ExportError

    def student_gone(**kw):  # noqa: ANN003, ANN202 - what a search dropping a student meanwhile leaves
        raise ExportError("trial 1: its student checkpoint x is missing")

    monkeypatch.setattr(search, "export_pareto", student_gone)
    assert main(["export", "--study", "live", "--target", "rtx3060", "--storage", url, "--out", str(out)]) == 1
    assert "export again once the search finishes" in capsys.readouterr().err


def test_export_of_a_finished_study_prints_no_warning(tmp_path, capsys):
    from autocompress.store import Store

    url = _study_with_a_running_search(tmp_path)
    store = Store(url)
    store.finish_run(store.runs("live")[0].id, "finished")
    store.close()
    assert main(["export", "--study", "live", "--target", "rtx3060", "--storage", url,
                 "--out", str(tmp_path / "out")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_dumb_terminal_gets_lines_with_the_fine_tune_progress():
    """TERM=dumb cannot redraw: the live view printed nothing until the end and no step lines."""
    from rich.console import Console

    from autocompress.cli.search_cmd import RichReporter

    console = Console(force_terminal=True, force_interactive=False, record=True, width=120)
    reporter = RichReporter(console)
    info = SimpleNamespace(study="s", target="rtx3060", target_description="d", out=None, storage="sqlite://",
                           artifacts="a", voice="demo", device="cpu", steps=4, n_done=0, n_trials=1, timeout_s=None,
                           quality_label="q", latency_label="projected for rtx3060",
                           memory_label="projected for rtx3060")
    reporter.search_started(info)
    assert reporter.live is None
    reporter.step(0, 4, 4, 0.5, None)
    reporter.close()
    assert "trial 0: fine-tune step 4/4  loss 0.5" in console.export_text()


def test_search_help_gives_the_defaults_of_trials_and_steps(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "finished trials the study should hold (default: the search space's)" in text
    assert "fine-tune steps per trial (default: the search space's)" in text


def test_the_cli_parser_loads_no_database_search_or_model_packages():
    """`autocompress --help` (and argument errors) answered after about a second of imports of
    Optuna and SQLAlchemy, which only the commands' work needs."""
    code = ("import sys; from autocompress.cli.main import build_parser; build_parser(); "
            "print(' '.join(m for m in ('sqlalchemy', 'optuna', 'torch', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
