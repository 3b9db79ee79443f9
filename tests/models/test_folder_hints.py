"""What a user is told when an experiment folder is the wrong one, or a voice's GPT the wrong version."""

from __future__ import annotations

import shutil

import pytest

from autocompress.exceptions import DataError
from autocompress.models.gpt_sovits.config import gpt_tiny
from autocompress.models.gpt_sovits.data import ExperimentFolder, make_synthetic_experiment
from autocompress.models.gpt_sovits.voice import check_phone_coverage


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> ExperimentFolder:
    return make_synthetic_experiment(tmp_path_factory.mktemp("exp") / "synth", n_items=2, seed=0)


def test_a_pro_folder_without_speaker_vectors_says_which_step_writes_them(synth, tmp_path):
    folder = tmp_path / "exp"
    shutil.copytree(synth.path, folder)
    with pytest.raises(DataError) as e:
        ExperimentFolder(folder, version="v2ProPlus")
    message = str(e.value)
    assert "7-sv_cn: missing folder" in message and "\n" not in message
    assert "7-sv_cn/<name>.pt" in message and "speaker-vector step" in message and "2-get-sv" in message


def test_the_logs_folder_names_its_experiment_folders(synth, tmp_path):
    logs = tmp_path / "logs"
    for name in ("b", "a", "c"):
        shutil.copytree(synth.path, logs / name)
    (logs / "notes").mkdir()  # not an experiment folder: not offered
    with pytest.raises(DataError) as e:
        ExperimentFolder(logs)
    message = str(e.value)
    assert message == f"{logs} is the folder of experiment folders; pass one of them: --data {logs}/<exp> (found: a, b, c)"


def test_a_folder_without_experiments_inside_still_names_the_missing_file(tmp_path):
    (tmp_path / "empty" / "notes").mkdir(parents=True)
    with pytest.raises(DataError, match=r"2-name2text.txt: missing file; an experiment folder needs"):
        ExperimentFolder(tmp_path / "empty")


@pytest.mark.parametrize("version", ["v2", "v2Pro", "v2ProPlus"])
def test_a_v1_gpt_on_newer_phones_names_the_gpt_version_to_use(version):
    v1 = gpt_tiny().replace(phoneme_vocab_size=512, version="v1")
    with pytest.raises(DataError, match=rf"this {version} voice's text; pair it with a v2 GPT"):
        check_phone_coverage(v1, ["ㄱ"], version)
