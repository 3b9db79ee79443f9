"""The manifest contract and the atomic file helpers."""

from __future__ import annotations

import json

import pytest

from autocompress.exceptions import ExportError
from autocompress.runtime.files import atomic_write_json, publish_dir, sha256_file, sibling_temp_dir
from autocompress.runtime.manifest import (
    GraphEntry,
    Manifest,
    MetricEntry,
    ModuleEntry,
    hash_files,
    read_manifest,
)


def _manifest(folder, **changes) -> Manifest:  # noqa: ANN001
    (folder / "dec.onnx").write_bytes(b"graph bytes")
    base = dict(
        target={"name": "cpu"},
        plan={},
        model={"sampling_rate": 32000},
        graphs={"dec": GraphEntry("dec", "dec.onnx", "dec", "int8", "dynamo", ("z", "ge"), ("wav",))},
        modules={"dec": ModuleEntry("dec", "int4", "int8", ({"precision": "int4", "reason": "SNR 3 dB < 18"},))},
        metrics=(MetricEntry("file_bytes_dec", 11.0, "bytes", "measured", "bundle files"),),
        files=hash_files(folder),
    )
    base.update(changes)
    return Manifest(**base)


def test_round_trip_through_json(tmp_path) -> None:
    manifest = _manifest(tmp_path)
    atomic_write_json(tmp_path / "manifest.json", manifest.to_dict())
    back = read_manifest(tmp_path)
    assert back == manifest
    assert back.modules["dec"].fallbacks[0]["precision"] == "int4"
    assert back.metric("file_bytes_dec").kind == "measured"
    assert json.loads((tmp_path / "manifest.json").read_text())["format"] == "autocompress-bundle"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"metrics": (MetricEntry("x", 1.0, "", "guessed", "cpu"),)}, "kind"),
        ({"metrics": (MetricEntry("x", 1.0, "", "measured", ""),)}, "device"),
        ({"modules": {"dec": ModuleEntry("dec", "int3", "int8")}}, "precision"),
        ({"modules": {}}, "no module entry"),
        ({"format_version": 99}, "got 99; a newer autocompress wrote it: upgrade autocompress"),
    ],
)
def test_invalid_manifests_are_rejected(tmp_path, changes, message) -> None:  # noqa: ANN001
    with pytest.raises(ExportError, match=message):
        _manifest(tmp_path, **changes)


def test_file_hashes_are_verified(tmp_path) -> None:
    manifest = _manifest(tmp_path)
    atomic_write_json(tmp_path / "manifest.json", manifest.to_dict())
    (tmp_path / "dec.onnx").write_bytes(b"other bytes")
    with pytest.raises(ExportError, match="dec.onnx has sha256"):
        read_manifest(tmp_path)
    (tmp_path / "dec.onnx").unlink()
    with pytest.raises(ExportError, match="missing"):
        read_manifest(tmp_path)
    assert read_manifest(tmp_path, verify=False).graphs["dec"].file == "dec.onnx"


def test_a_newer_format_says_upgrade_even_when_its_fields_changed(tmp_path) -> None:
    data = _manifest(tmp_path).to_dict()
    data["format_version"] = 2
    data["graphs"]["dec"]["layout"] = "a field a later format adds"
    del data["modules"]  # or one it moves
    atomic_write_json(tmp_path / "manifest.json", data)
    with pytest.raises(ExportError, match="format_version 2 is newer than this autocompress reads.*upgrade autocompress"):
        read_manifest(tmp_path)


def test_a_manifest_that_is_not_utf8_is_a_one_line_error(tmp_path) -> None:
    (tmp_path / "manifest.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(ExportError, match="cannot read .*manifest.json"):
        read_manifest(tmp_path)


def test_not_a_bundle(tmp_path) -> None:
    with pytest.raises(ExportError, match="no manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(ExportError, match="missing or has a bad field"):
        read_manifest(tmp_path)


def test_publish_dir_swaps_whole_folders(tmp_path) -> None:
    dest = tmp_path / "bundle"
    dest.mkdir()
    (dest / "old").write_text("old")
    built = sibling_temp_dir(dest)
    (built / "new").write_text("new")
    publish_dir(built, dest)
    assert [p.name for p in dest.iterdir()] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    assert sha256_file(dest / "new") == "11507a0e2f5e69d5dfa40a62a1bd7b6ee57e6bcd85c67c9b8431b36fff21c437"


def test_atomic_files_and_folders_get_ordinary_permissions(tmp_path) -> None:
    """mkstemp/mkdtemp make 0600/0700; a written file or bundle folder must be readable as usual."""
    import os
    import stat

    from autocompress.runtime.files import atomic_write_bytes, sibling_temp_dir

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.wav", b"x")
        folder = sibling_temp_dir(tmp_path / "bundle")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.wav").stat().st_mode) == 0o644
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755


def test_a_failed_file_check_says_what_to_do(tmp_path) -> None:
    atomic_write_json(tmp_path / "manifest.json", _manifest(tmp_path).to_dict())
    (tmp_path / "dec.onnx").unlink()
    with pytest.raises(ExportError, match="dec.onnx is missing; restore the bundle's files as exported, or export"):
        read_manifest(tmp_path)


def test_fields_a_newer_exporter_adds_to_an_entry_are_ignored(tmp_path) -> None:
    data = _manifest(tmp_path).to_dict()
    data["graphs"]["dec"]["opset"] = 21
    data["metrics"][0]["samples"] = 8
    data["modules"]["dec"]["seconds"] = 3.5
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    back = read_manifest(tmp_path)
    assert back.graphs["dec"].file == "dec.onnx" and back.metric("file_bytes_dec").value == 11.0


@pytest.mark.parametrize("section", ["graphs", "modules"])
def test_a_section_that_is_not_a_mapping_is_one_line(tmp_path, section) -> None:  # noqa: ANN001
    data = _manifest(tmp_path).to_dict()
    data[section] = list(data[section].values())
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ExportError, match="manifest is missing or has a bad field"):
        read_manifest(tmp_path)
