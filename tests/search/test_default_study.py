"""The study a user's voice gets without --study, and what a name taken by another voice says."""

from __future__ import annotations

import optuna
import pytest

from autocompress.exceptions import SearchError
from autocompress.search.config import SearchConfig, resolve
from autocompress.search.study import check_resumable, identity, open_storage, open_study


def _study_for(tmp_path, folder: str) -> str:
    (tmp_path / "gpt.ckpt").touch()
    (tmp_path / "sovits.pth").touch()
    data = tmp_path / "logs" / folder
    data.mkdir(parents=True)
    config = SearchConfig(target="rtx3060", gpt=tmp_path / "gpt.ckpt", sovits=tmp_path / "sovits.pth", data=data,
                          storage=f"sqlite:///{tmp_path}/s.db", out=tmp_path / "out" / folder)
    return resolve(config).study


def test_experiment_folders_named_in_chinese_get_a_study_each(tmp_path):
    """GPT-SoVITS users often name experiments in Chinese: each such folder got study 'voice',
    and the second voice's search was refused as if its data had changed."""
    first, second = _study_for(tmp_path, "小明"), _study_for(tmp_path, "小红")
    assert first != second and first.startswith("voice-") and second.startswith("voice-")
    assert _study_for(tmp_path, "小明_v2").startswith("v2-")
    assert len(_study_for(tmp_path, "a" * 130 + "名")) == 128


def test_an_ascii_folder_keeps_the_study_name_it_always_had(tmp_path):
    assert _study_for(tmp_path, "my voice") == "my-voice"
    assert _study_for(tmp_path, "me_e8") == "me_e8"


def test_a_folder_starting_with_an_underscore_gets_a_valid_default_study(tmp_path):
    """It was refused with '--study '_exp1': use ...', a flag the user never gave."""
    assert _study_for(tmp_path, "_exp1") == "exp1"
    assert _study_for(tmp_path, "__") == "voice"


def test_a_study_name_taken_by_another_voice_and_folder_says_so(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    was = identity("rtx3060", "space", "abc", {"data": "logs/小明"}, voice_sha256="v1", data_sha256="d1")
    open_study(open_storage(url), "voice", was, optuna.samplers.RandomSampler(), "note", baselines=())
    storage = open_storage(url)
    other = identity("rtx3060", "space", "abc", {"data": "logs/小红"}, voice_sha256="v2", data_sha256="d2")
    with pytest.raises(SearchError, match=r"was created for another voice .*logs/小明\); start a new study") as e:
        check_resumable(storage, "voice", other)
    assert "changed" not in str(e.value) and "\n" not in str(e.value)
    edited = identity("rtx3060", "space", "abc", {"data": "logs/小明"}, voice_sha256="v1", data_sha256="d2")
    with pytest.raises(SearchError, match="was created for other data"):  # the same voice, its lists edited
        check_resumable(storage, "voice", edited)


def test_a_study_refused_for_another_target_or_scoring_names_a_ready_new_study(tmp_path):
    """The demo's one default study refused a second target (or an upgrade) with '--study NAME';
    the hint now names a study that would start at once."""
    url = f"sqlite:///{tmp_path}/s.db"
    was = identity("rtx3060", "space", "abc", {"data": "demo"})
    open_study(open_storage(url), "demo", was, optuna.samplers.RandomSampler(), "note", baselines=())
    with pytest.raises(SearchError, match=r"start a new study with --study demo-cpu$"):
        check_resumable(open_storage(url), "demo", identity("cpu", "space", "abc", {"data": "demo"}))
    older = dict(identity("rtx3060", "space", "abc", {"data": "demo"}), scoring=1)
    with pytest.raises(SearchError, match=r"e\.g\. --study demo-v1$"):
        check_resumable(open_storage(url), "demo", older)
