"""A micro teacher voice, a synthetic experiment folder and a small search space for search tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from _micro_voice import make_micro_voice

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def micro_voice(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_micro_voice(tmp_path_factory.mktemp("micro-voice"))


@pytest.fixture(scope="module")
def teacher_and_items(micro_voice: dict[str, Path]):  # noqa: ANN201
    """The micro teacher (no ``enc_q``, frozen layout as the search loads it) and its first three coded items."""
    from autocompress.models.gpt_sovits import ExperimentFolder, load_gpt, load_sovits
    from autocompress.models.gpt_sovits.voice import Voice
    from autocompress.search.distill import load_items

    sovits = load_sovits(micro_voice["sovits"])
    sovits.drop_enc_q_()
    teacher = Voice(load_gpt(micro_voice["gpt"]).eval(), sovits.eval())
    folder = ExperimentFolder(micro_voice["data"], version=sovits.config.version)
    return teacher, load_items(folder, [n for n in folder.names if folder[n].codes][:3], sovits.config)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # The models are tiny and the test machine is shared: one thread is fastest and steadiest.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def search_argv(micro_voice: dict[str, Path]):
    """``search_argv(tmp, *extra)``: ``run_search.py`` flags for the micro voice, database and exports in ``tmp``."""

    def argv(tmp: Path, *extra: str) -> list[str]:
        return [
            "--target", "rtx3060", "--gpt", str(micro_voice["gpt"]), "--sovits", str(micro_voice["sovits"]),
            "--data", str(micro_voice["data"]), "--space", str(micro_voice["space"]), "--study", "micro",
            "--storage", f"sqlite:///{tmp}/db/s.db", "--out", str(tmp / "exports"), *extra,
        ]

    return argv


@pytest.fixture(scope="session")
def run_search_cmd() -> tuple[list[str], dict[str, str]]:
    """The command prefix and environment that run ``run_search.py`` in a child process."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return [sys.executable, str(ROOT / "run_search.py")], env
