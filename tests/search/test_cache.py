"""The teacher cache: reused while its inputs hold, rebuilt when they change."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from autocompress.search.cache import TeacherCache


def test_a_cache_of_other_items_under_the_same_fingerprint_is_rebuilt(teacher_and_items, tmp_path, monkeypatch):
    """The fingerprint holds the items' names, not their contents: an experiment folder whose
    texts or codes changed under the same names must not be scored against the old teacher outputs."""
    teacher, items = teacher_and_items
    prompt, evals = items[0], items[1:]
    path = tmp_path / "cache.pt"
    TeacherCache.load_or_build(path, teacher, evals, prompt, evals[:1], "key")
    builds = []
    build = TeacherCache.build.__func__
    monkeypatch.setattr(TeacherCache, "build", classmethod(lambda cls, *a, **k: builds.append(1) or build(cls, *a, **k)))

    again = TeacherCache.load_or_build(path, teacher, evals, prompt, evals[:1], "key")
    assert builds == [] and [i.name for i in again.targets.items] == [i.name for i in evals]  # same items: reused

    edited = dataclasses.replace(evals[0], codes=torch.flip(evals[0].codes, [0]))  # same name, other codes
    cache = TeacherCache.load_or_build(path, teacher, [edited, evals[1]], prompt, [edited], "key")
    assert builds == [1] and torch.equal(cache.targets.items[0].codes, edited.codes)
    assert torch.equal(cache.sentences[0].codes, edited.codes)

    moved = TeacherCache.load_or_build(path, teacher, [evals[1]], prompt, [evals[1]], "key")  # an item left the eval set
    assert builds == [1, 1] and [i.name for i in moved.targets.items] == [evals[1].name]


def test_a_cache_that_cannot_be_saved_says_so_in_one_line_and_leaves_no_partial_file(teacher_and_items, tmp_path,
                                                                                      monkeypatch):
    """A full disk: torch reports the failed write as a RuntimeError naming its own source line."""
    from autocompress.exceptions import SearchError

    teacher, items = teacher_and_items
    prompt, evals = items[0], items[1:]
    path = tmp_path / "teacher-cache" / "study.pt"

    def full_disk(obj, f, *a, **k):  # noqa: ANN001, ANN002, ANN003
        with open(f, "wb") as out:
            out.write(b"PK\x03\x04 half a zip")  # what was written before the disk filled
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(SearchError, match="cannot write the teacher cache .*study.pt: .*disk full") as e:
        TeacherCache.load_or_build(path, teacher, evals, prompt, evals[:1], "key")
    assert "\n" not in str(e.value)
    assert list(path.parent.iterdir()) == []  # no partial temporary file taking space on a full disk


def test_the_fingerprint_changes_with_the_scoring_version(tmp_path, monkeypatch):
    """The cache holds the teacher's MOS and speaker vectors: a study recreated under its name by
    an autocompress that scores otherwise must not reuse them."""
    from autocompress.search import cache as cache_mod

    f = tmp_path / "gpt.ckpt"
    f.write_bytes(b"weights")
    before = cache_mod.fingerprint([f], ["a", "b"], {"seg": 32})
    assert cache_mod.fingerprint([f], ["a", "b"], {"seg": 32}) == before
    monkeypatch.setattr(cache_mod, "SCORING_VERSION", cache_mod.SCORING_VERSION + 1)
    assert cache_mod.fingerprint([f], ["a", "b"], {"seg": 32}) != before
