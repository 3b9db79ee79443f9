"""The teacher cache: reused while its inputs hold, rebuilt when they change."""

from __future__ import annotations

import dataclasses

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
