"""The data a study records: a resume on changed feature folders is refused, an older study still resumes."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import optuna
import pytest
import torch
from _micro_voice import make_micro_voice

from autocompress.cli.main import main
from autocompress.search.daemon import DATA_FILES_ATTR, FEATURE_DIRS, _data_files
from autocompress.search.study import IDENTITY_ATTR


@pytest.fixture(scope="module")
def pro_voice(tmp_path_factory):  # noqa: ANN001, ANN201
    """A micro v2Pro voice: its SoVITS reads the folder's 7-sv_cn speaker vectors."""
    return make_micro_voice(tmp_path_factory.mktemp("pro-voice"), version="v2Pro")


def _argv(voice, data, tmp_path, *extra: str) -> list[str]:  # noqa: ANN001
    return [
        "--target", "rtx3060", "--gpt", str(voice["gpt"]), "--sovits", str(voice["sovits"]), "--data", str(data),
        "--space", str(voice["space"]), "--study", "micro", "--storage", f"sqlite:///{tmp_path}/db/s.db",
        "--no-export", "--steps", "0", *extra,
    ]  # fmt: skip


def test_feature_listing_follows_names_and_sizes_per_folder(micro_voice, pro_voice, tmp_path):
    data = tmp_path / "exp"
    shutil.copytree(micro_voice["data"], data)
    (data / "7-sv_cn").mkdir(exist_ok=True)
    voice = SimpleNamespace(data=data, sovits=pro_voice["sovits"])  # a voice that reads every folder
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


def test_resume_after_features_changed_is_refused_unless_the_study_predates_the_record(micro_voice, tmp_path, capsys):
    data = tmp_path / "exp"
    shutil.copytree(micro_voice["data"], data)
    (tmp_path / "db").mkdir()
    assert main(["search", *_argv(micro_voice, data, tmp_path, "--trials", "1")]) == 0
    capsys.readouterr()
    hubert = sorted((data / "4-cnhubert").glob("*.pt"))[0]
    features = torch.load(hubert, weights_only=True)
    # extracted again at the other precision: the same names, other sizes
    torch.save(features.float() if features.dtype == torch.float16 else features.half(), hubert)
    more = _argv(micro_voice, data, tmp_path, "--trials", "2")
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


def test_a_voice_without_speaker_vectors_leaves_their_folder_out(micro_voice, pro_voice):
    """Only v2Pro / v2ProPlus read 7-sv_cn; a v2 voice's record has no entry for it."""
    v2 = _data_files(SimpleNamespace(data=micro_voice["data"], sovits=micro_voice["sovits"]))
    pro = _data_files(SimpleNamespace(data=pro_voice["data"], sovits=pro_voice["sovits"]))
    assert set(v2) == set(FEATURE_DIRS) - {"7-sv_cn"}
    assert set(pro) == set(FEATURE_DIRS) and pro["7-sv_cn"] != "-"


def test_speaker_vectors_added_refuse_a_v2pro_resume_but_not_a_v2_one(micro_voice, pro_voice, tmp_path, capsys):
    """A speaker vector added to 7-sv_cn refused the resume of a v2 study, whose voice never reads it."""
    for voice, name in ((micro_voice, "v2"), (pro_voice, "v2Pro")):
        tmp = tmp_path / name
        data = tmp / "exp"
        shutil.copytree(voice["data"], data)
        (tmp / "db").mkdir()
        assert main(["search", *_argv(voice, data, tmp, "--trials", "1")]) == 0
        capsys.readouterr()
        (data / "7-sv_cn").mkdir(exist_ok=True)
        (data / "7-sv_cn" / "extra.wav.pt").write_bytes(b"not read by a v2 voice")
        code = main(["search", *_argv(voice, data, tmp, "--trials", "2")])
        err = capsys.readouterr().err
        if name == "v2":
            assert code == 0, err
        else:
            assert code == 1 and "was created for other data" in err and "7-sv_cn" in err


def test_a_v2_study_recorded_with_a_speaker_vector_entry_still_resumes(micro_voice, tmp_path, capsys):
    """A study recorded before the entry was left out (every folder, 7-sv_cn as "-") is compared on the
    folders both records have, so a speaker vector added since does not refuse it."""
    data = tmp_path / "exp"
    shutil.copytree(micro_voice["data"], data)
    (tmp_path / "db").mkdir()
    assert main(["search", *_argv(micro_voice, data, tmp_path, "--trials", "1")]) == 0
    study = optuna.load_study(study_name="micro", storage=f"sqlite:///{tmp_path}/db/s.db")
    ident = dict(study.user_attrs[IDENTITY_ATTR])
    assert "7-sv_cn" not in ident[DATA_FILES_ATTR]
    ident[DATA_FILES_ATTR] = {**ident[DATA_FILES_ATTR], "7-sv_cn": "-"}  # as stored before
    study.set_user_attr(IDENTITY_ATTR, ident)
    (data / "7-sv_cn").mkdir()
    (data / "7-sv_cn" / "extra.wav.pt").write_bytes(b"1")
    capsys.readouterr()
    assert main(["search", *_argv(micro_voice, data, tmp_path, "--trials", "2")]) == 0, capsys.readouterr().err
