"""The data a study records: a resume on changed feature folders is refused, an older study still resumes."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import optuna
import torch

from autocompress.cli.main import main
from autocompress.search.daemon import DATA_FILES_ATTR, FEATURE_DIRS, _data_files
from autocompress.search.study import IDENTITY_ATTR


def test_feature_listing_follows_names_and_sizes_per_folder(micro_voice, tmp_path):
    data = tmp_path / "exp"
    shutil.copytree(micro_voice["data"], data)
    (data / "7-sv_cn").mkdir(exist_ok=True)
    voice = SimpleNamespace(data=data)
    before = _data_files(voice)
    assert set(before) == set(FEATURE_DIRS)
    assert _data_files(voice) == before  # the same folder, the same record
    first = sorted((data / "4-cnhubert").iterdir())[0]
    first.write_bytes(first.read_bytes() + b"\0")
    after = _data_files(voice)
    assert [f for f in FEATURE_DIRS if after[f] != before[f]] == ["4-cnhubert"]
    (data / "7-sv_cn" / "x.wav.pt").write_bytes(b"1")  # a new file, though no other changed size
    assert _data_files(voice)["7-sv_cn"] != after["7-sv_cn"]
    shutil.rmtree(data / "7-sv_cn")
    assert _data_files(voice)["7-sv_cn"] == "-"


def test_resume_after_features_changed_is_refused_unless_the_study_predates_the_record(
    search_argv, micro_voice, tmp_path, capsys
):
    data = tmp_path / "exp"
    shutil.copytree(micro_voice["data"], data)
    argv = [str(data) if a == str(micro_voice["data"]) else a
            for a in search_argv(tmp_path, "--trials", "1", "--no-export", "--steps", "0")]
    (tmp_path / "db").mkdir()
    assert main(["search", *argv]) == 0
    capsys.readouterr()
    hubert = sorted((data / "4-cnhubert").glob("*.pt"))[0]
    features = torch.load(hubert, weights_only=True)
    # extracted again at the other precision: the same names, other sizes
    torch.save(features.float() if features.dtype == torch.float16 else features.half(), hubert)
    more = [a if a != "1" else "2" for a in argv]
    assert main(["search", *more]) == 1
    err = capsys.readouterr().err
    assert "was created for other data" in err and "4-cnhubert" in err and err.count("\n") == 1

    # A study recorded before the feature folders were: nothing to compare them with, so it resumes.
    study = optuna.load_study(study_name="micro", storage=f"sqlite:///{tmp_path}/db/s.db")
    old = {k: v for k, v in study.user_attrs[IDENTITY_ATTR].items() if k != DATA_FILES_ATTR}
    study.set_user_attr(IDENTITY_ATTR, old)
    assert main(["search", *more]) == 0
    trials = optuna.load_study(study_name="micro", storage=f"sqlite:///{tmp_path}/db/s.db").trials
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == 2  # one more than before
