"""Experiment folders: reading and validation, datasets and collates, writing."""

from __future__ import annotations

import dataclasses
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from autocompress.exceptions import DataError
from autocompress.models.gpt_sovits.audio import spectrogram_raw
from autocompress.models.gpt_sovits.config import sovits_tiny, sovits_v2pro
from autocompress.models.gpt_sovits.data import (
    CODE_PAD,
    ExperimentFolder,
    ExperimentRecord,
    GPTDataset,
    SoVITSDataset,
    gpt_collate,
    hubert_frames_for,
    make_synthetic_experiment,
    sovits_collate,
    write_experiment,
)
from autocompress.models.gpt_sovits.text import phones_to_ids


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> ExperimentFolder:
    return make_synthetic_experiment(tmp_path_factory.mktemp("exp") / "synth", n_items=6, seed=0)


@pytest.fixture
def copy(synth, tmp_path) -> Path:
    """A private copy of the synthetic folder, free to be damaged."""
    dst = tmp_path / "copy"
    shutil.copytree(synth.path, dst)
    return dst


def _rewrite_line(path: Path, lineno: int, new: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[lineno - 1] = new + "\n"
    path.write_text("".join(lines), encoding="utf-8")


# --------------------------------------------------------------------------- synthetic folder


def test_synthetic_folder_is_valid_and_consistent(synth):
    assert len(synth) == 6 and synth.dropped == {}
    for item in synth:
        assert item.name.endswith(".wav")
        assert item.hubert_frames == hubert_frames_for(item.n_samples)
        assert item.n_samples // 640 - item.hubert_frames in (0, 1)
        assert len(item.codes) == item.hubert_frames // 2
        assert 1.0 <= item.duration_s <= 2.0
        assert 3 <= item.n_phones / (len(item.codes) / 25) <= 25
        wav = item.load_wav()
        assert wav.dtype == torch.float32 and wav.shape == (item.n_samples,)
        assert 0.7 < wav.abs().max() <= 0.8 + 1e-4
    s = synth.summary()
    assert (s["items"], s["with_codes"], s["with_bert"], s["with_sv"]) == (6, 6, 3, 0)
    assert s["total_seconds"] == pytest.approx(sum(i.n_samples for i in synth) / 32000, abs=1e-3)


def test_synthetic_folder_is_deterministic(synth, tmp_path):
    again = make_synthetic_experiment(tmp_path / "again", n_items=6, seed=0)
    other = make_synthetic_experiment(tmp_path / "other", n_items=6, seed=1)
    name2text = (synth.path / "2-name2text.txt").read_text()
    assert (again.path / "2-name2text.txt").read_text() == name2text
    assert (other.path / "2-name2text.txt").read_text() != name2text
    for a, b in zip(synth, again):
        assert torch.equal(a.load_wav(), b.load_wav())
        assert torch.equal(a.load_hubert(), b.load_hubert())
        assert a.codes == b.codes


def test_split_is_deterministic_disjoint_and_complete(synth):
    train, held = synth.split(0.34, seed=3)
    assert len(held) == 2 and len(train) == 4
    assert sorted(train + held) == sorted(synth.names)
    assert synth.split(0.34, seed=3) == (train, held)
    assert {tuple(synth.split(0.34, seed=s)[1]) for s in range(8)} != {tuple(held)}
    assert synth.split(0.01, seed=0)[1] != []  # a positive fraction holds out at least one
    assert synth.split(0.0)[1] == []
    with pytest.raises(DataError, match="eval_fraction"):
        synth.split(1.0)


# --------------------------------------------------------------------------- validation


def test_missing_folder_is_named(copy):
    shutil.rmtree(copy / "5-wav32k")
    with pytest.raises(DataError, match=r"5-wav32k: missing folder"):
        ExperimentFolder(copy)


def test_pro_folder_needs_sv_folder(copy):
    with pytest.raises(DataError, match=r"7-sv_cn: missing folder"):
        ExperimentFolder(copy, version="v2Pro")


def test_name2text_wrong_field_count_names_the_line(copy):
    path = copy / "2-name2text.txt"
    first = path.read_text().splitlines()[1].split("\t")
    _rewrite_line(path, 2, "\t".join(first[:3]))
    with pytest.raises(DataError, match=r"2-name2text.txt:2: 3 tab-separated fields, expected 4"):
        ExperimentFolder(copy, strict=True)


def test_unknown_phone_names_the_line_and_symbol(copy):
    path = copy / "2-name2text.txt"
    fields = path.read_text().splitlines()[2].split("\t")
    fields[1] = "AA1 QQ9 B"
    _rewrite_line(path, 3, "\t".join(fields))
    with pytest.raises(DataError, match=r"2-name2text.txt:3: unknown phone symbol 'QQ9'"):
        ExperimentFolder(copy, strict=True)


def test_v2_only_symbol_is_rejected_for_v1(tmp_path):
    folder = make_synthetic_experiment(tmp_path / "v1", n_items=2, seed=5, version="v1")
    path = folder.path / "2-name2text.txt"
    fields = path.read_text().splitlines()[1].split("\t")  # item 1 has no BERT file
    fields[1] = "AA1 ㄱ"
    _rewrite_line(path, 2, "\t".join(fields))
    assert ExperimentFolder(folder.path, version="v2")[fields[0]].phones == ("AA1", "ㄱ")
    with pytest.raises(DataError, match=r"2-name2text.txt:2: unknown phone symbol 'ㄱ'.*v1"):
        ExperimentFolder(folder.path, version="v1", strict=True)


def test_pt_that_is_not_a_tensor(copy, synth):
    name = synth.names[1]
    torch.save({"feats": torch.zeros(1, 768, 10)}, copy / "4-cnhubert" / f"{name}.pt")
    with pytest.raises(DataError, match=rf"4-cnhubert/{name}.pt: expected a tensor, got dict"):
        ExperimentFolder(copy, strict=True)


def test_pt_with_a_pickled_object_is_refused_without_running_it(copy, synth):
    name = synth.names[0]
    torch.save(Path("/tmp"), copy / "4-cnhubert" / f"{name}.pt")  # needs a non-allow-listed global
    with pytest.raises(DataError, match=rf"4-cnhubert/{name}.pt: cannot be loaded as a tensor file"):
        ExperimentFolder(copy, strict=True)


def test_hubert_wrong_shape(copy, synth):
    item = synth.items[2]
    torch.save(torch.zeros(1, 512, item.hubert_frames), copy / "4-cnhubert" / f"{item.name}.pt")
    with pytest.raises(DataError, match=r"shape \[1, 512, \d+\], expected \[1, 768, T\]"):
        ExperimentFolder(copy, strict=True)


def test_hubert_length_not_matching_audio(copy, synth):
    item = synth.items[2]
    torch.save(torch.zeros(1, 768, item.hubert_frames - 3), copy / "4-cnhubert" / f"{item.name}.pt")
    with pytest.raises(DataError, match=rf"{item.name}.pt: {item.hubert_frames - 3} HuBERT frames"):
        ExperimentFolder(copy, strict=True)


def test_bert_length_must_equal_phone_count(copy, synth):
    item = next(i for i in synth if i.bert_path is not None)
    torch.save(torch.zeros(1024, item.n_phones + 1), copy / "3-bert" / f"{item.name}.pt")
    with pytest.raises(DataError, match=rf"3-bert/{item.name}.pt: .*expected \[1024, {item.n_phones}\].*n_phones"):
        ExperimentFolder(copy, strict=True)


def test_codes_non_integer_and_out_of_range(copy):
    path = copy / "6-name2semantic.tsv"
    name, codes = path.read_text().splitlines()[3].split("\t")
    _rewrite_line(path, 4, f"{name}\t{codes} 7.5")
    with pytest.raises(DataError, match=r"6-name2semantic.tsv:4: code '7.5' is not an integer"):
        ExperimentFolder(copy, strict=True)
    folder = ExperimentFolder(copy)  # as upstream's trainers skip it: the item is left out, named
    assert name not in folder.names and "6-name2semantic.tsv:4: code '7.5'" in folder.dropped[name]
    _rewrite_line(path, 4, f"{name}\t1024 {codes}")
    with pytest.raises(DataError, match=r"6-name2semantic.tsv:4: code 1024 outside 0..1023"):
        ExperimentFolder(copy, strict=True)
    _rewrite_line(path, 4, name)
    assert "1 tab-separated fields" in ExperimentFolder(copy).dropped[name]
    _rewrite_line(path, 1, "name\tcodes")
    with pytest.raises(DataError, match=r"6-name2semantic.tsv:1: expected the header"):
        ExperimentFolder(copy)


def test_wav_at_the_wrong_sample_rate(copy, synth):
    name = synth.names[4]
    data, _ = soundfile.read(str(copy / "5-wav32k" / name), dtype="int16")
    soundfile.write(str(copy / "5-wav32k" / name), data, 16000, subtype="PCM_16")
    with pytest.raises(DataError, match=rf"5-wav32k/{name}: sample rate 16000 Hz, expected 32000"):
        ExperimentFolder(copy, strict=True)


def test_missing_files_drop_items_like_upstream_or_raise_when_strict(copy, synth):
    gone = synth.names[3]
    (copy / "4-cnhubert" / f"{gone}.pt").unlink()
    (copy / "5-wav32k" / "extra.wav").write_bytes((copy / "5-wav32k" / synth.names[0]).read_bytes())
    folder = ExperimentFolder(copy)
    assert gone not in folder and len(folder) == 5
    assert "4-cnhubert" in folder.dropped[gone]
    assert folder.summary()["dropped"] == 1
    with pytest.raises(DataError, match=rf"4-cnhubert/{gone}.pt: missing file"):
        ExperimentFolder(copy, strict=True)


def test_bad_lines_and_items_are_left_out_with_their_reason_unless_strict(copy, synth):
    """Like upstream's trainers, a folder with a few bad entries still trains on the rest."""
    path = copy / "2-name2text.txt"
    fields = path.read_text().splitlines()[2].split("\t")
    bad_line = fields[0]
    fields[1] = "AA1 QQ9 B"
    _rewrite_line(path, 3, "\t".join(fields))
    bad_audio = synth.names[4]
    data, _ = soundfile.read(str(copy / "5-wav32k" / bad_audio), dtype="int16")
    soundfile.write(str(copy / "5-wav32k" / bad_audio), data, 16000, subtype="PCM_16")
    folder = ExperimentFolder(copy)
    assert folder.names == [n for n in synth.names if n not in (bad_line, bad_audio)]
    assert "2-name2text.txt:3: unknown phone symbol 'QQ9'" in folder.dropped[bad_line]
    assert "sample rate 16000 Hz" in folder.dropped[bad_audio]
    with pytest.raises(DataError, match=r"2-name2text.txt:3: unknown phone symbol 'QQ9'"):
        ExperimentFolder(copy, strict=True)


def test_a_repeated_name_is_refused_even_when_not_strict(copy):
    path = copy / "2-name2text.txt"
    lines = path.read_text().splitlines()
    name, phones, *rest = lines[1].split("\t")
    other = "\t".join([name, " ".join(phones.split()[::-1]), *rest])  # the same name, other phones
    path.write_text("\n".join(lines + [other]) + "\n")
    with pytest.raises(DataError, match=rf"2-name2text.txt:{len(lines) + 1}: name .* appears twice, with different"
                                        r".*hint: upstream names an item by its audio file's basename"):
        ExperimentFolder(copy)


def test_a_line_repeated_word_for_word_is_read_once(copy, caplog):
    """Upstream reads an item listed twice once; identical lines are not ambiguous."""
    before = ExperimentFolder(copy).names
    for file in ("2-name2text.txt", "6-name2semantic.tsv"):
        path = copy / file
        lines = path.read_text().splitlines()
        path.write_text("\n".join(lines + [lines[2], lines[2]]) + "\n")
    assert ExperimentFolder(copy).names == before
    assert "2 line(s) repeat an earlier line word for word" in caplog.text
    semantic = copy / "6-name2semantic.tsv"
    lines = semantic.read_text().splitlines()
    name, codes = lines[-1].split("\t")
    semantic.write_text("\n".join([*lines, f"{name}\t{codes} 7"]) + "\n")
    with pytest.raises(DataError, match=rf"6-name2semantic.tsv:{len(lines) + 1}: name .* with different contents"):
        ExperimentFolder(copy)


def test_stale_codes_are_caught_by_their_length(copy, synth, caplog):
    """Upstream codes T HuBERT frames into T // 2 codes; other lengths belong to other features."""
    item = synth.items[2]
    path = copy / "6-name2semantic.tsv"
    lines = path.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith(item.name + "\t"))
    _rewrite_line(path, row + 1, f"{item.name}\t{' '.join(['7'] * (item.hubert_frames // 2 + 3))}")
    folder = ExperimentFolder(copy)
    assert item.name not in folder and "is stale" in folder.dropped[item.name]
    with pytest.raises(DataError, match=rf"{item.hubert_frames // 2 + 3} codes for '{item.name}'.*stale"):
        ExperimentFolder(copy, strict=True)
    assert len(ExperimentFolder(copy, check_tensors=False)) == len(synth)  # lengths unknown: not checked


def test_semantic_names_without_a_partner_are_reported(copy, synth, caplog):
    path = copy / "6-name2semantic.tsv"
    lines = path.read_text().splitlines()
    uncoded = lines[1].split("\t")[0]
    path.write_text("\n".join([lines[0], *lines[2:], "ghost.wav\t1 2 3"]) + "\n")
    with caplog.at_level("WARNING"):
        folder = ExperimentFolder(copy)
    assert folder[uncoded].codes is None and len(folder) == len(synth)
    assert "1 names of 6-name2semantic.tsv are not in 2-name2text.txt" in caplog.text and "ghost.wav" in caplog.text
    assert f"1 of {len(synth)} items have no codes" in caplog.text and uncoded in caplog.text


def test_mandarin_items_without_bert_are_named_in_a_warning(copy, synth, caplog):
    """Upstream writes 3-bert only for zh lines; a zh item without one is read with zeros, which must be said."""
    zh, en, yue, ja = "n i3 h ao3 .", "HH AH0 L OW1 Y AA1 .", "Yn Yei5 Yh You2", "k o N n i ch i w a"
    path = copy / "2-name2text.txt"
    lines = path.read_text().splitlines()
    shutil.rmtree(copy / "3-bert")
    (copy / "3-bert").mkdir()
    for lineno, phones in enumerate((zh, zh, en, yue, ja, zh), start=1):
        fields = lines[lineno - 1].split("\t")
        _rewrite_line(path, lineno, "\t".join([fields[0], phones, "None" if phones in (en, ja) else "[2, 2, 1]", fields[3]]))
    names = synth.names
    torch.save(torch.zeros(1024, 5).half().T.contiguous().T, copy / "3-bert" / f"{names[5]}.pt")  # as 1-get-text: fp16, transposed
    with caplog.at_level("WARNING"):
        folder = ExperimentFolder(copy)
    assert len(folder) == len(synth) and folder.summary()["with_bert"] == 1
    assert f"2 of {len(synth)} items are Mandarin and have no 3-bert/<name>.pt (first: {names[0]})" in caplog.text
    assert "zeros" in caplog.text
    caplog.clear()
    for name in names[:2]:
        torch.save(torch.zeros(1024, 5), copy / "3-bert" / f"{name}.pt")
    with caplog.at_level("WARNING"):
        ExperimentFolder(copy)
    assert "Mandarin" not in caplog.text  # English, Cantonese and Japanese lines have no BERT upstream either


def test_byte_order_mark_is_not_part_of_the_first_name(copy, synth):
    path = copy / "2-name2text.txt"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    folder = ExperimentFolder(copy, strict=True)
    assert folder.names == synth.names


def test_no_usable_items(copy):
    shutil.rmtree(copy / "4-cnhubert")
    (copy / "4-cnhubert").mkdir()
    with pytest.raises(DataError, match="no usable items"):
        ExperimentFolder(copy)


# --------------------------------------------------------------------------- folders as upstream leaves them


def test_lines_end_at_newlines_only_as_upstream_splits_them(copy, synth):
    """A norm_text may hold U+2028, a form feed or NEL; upstream splits at newlines only (CRLF included)."""
    for file in ("2-name2text.txt", "6-name2semantic.tsv"):
        path = copy / file
        lines = path.read_text(encoding="utf-8").split("\n")
        if file == "2-name2text.txt":
            for i, mark in enumerate(("\u2028", "\x0c", "\x85")):
                lines[i] += f"{mark}tail"
        path.write_bytes(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))  # as written on Windows
    folder = ExperimentFolder(copy, strict=True)
    assert folder.names == synth.names and folder.dropped == {}
    assert folder[synth.names[0]].norm_text == synth[synth.names[0]].norm_text + "\u2028tail"
    assert [item.codes for item in folder] == [item.codes for item in synth]


def test_a_required_folder_that_is_a_file_is_named(copy):
    shutil.rmtree(copy / "4-cnhubert")
    (copy / "4-cnhubert").write_text("")
    with pytest.raises(DataError, match=r"4-cnhubert: not a folder; an experiment folder needs"):
        ExperimentFolder(copy)


def test_unmerged_shards_are_named(copy, caplog):
    """Upstream's preparation writes ``*-<i_part>`` shards that only the WebUI merges."""
    (copy / "6-name2semantic.tsv").rename(copy / "6-name2semantic-0.tsv")
    with caplog.at_level("WARNING"):
        folder = ExperimentFolder(copy)
    assert "no 6-name2semantic.tsv, but the shards 6-name2semantic-0.tsv are there" in caplog.text
    assert all(item.codes is None for item in folder)
    lines = (copy / "2-name2text.txt").read_text().split("\n")
    (copy / "2-name2text.txt").unlink()
    (copy / "2-name2text-1.txt").write_text("\n".join(lines[1::2]))
    (copy / "2-name2text-0.txt").write_text("\n".join(lines[0::2]))
    with pytest.raises(DataError, match=r"2-name2text.txt: missing file, but the shards 2-name2text-0.txt, "
                                        r"2-name2text-1.txt are there; hint: .*join their lines"):
        ExperimentFolder(copy)


def test_a_semantic_file_without_its_header_gets_a_hint(copy):
    path = copy / "6-name2semantic.tsv"
    path.write_text("\n".join(path.read_text().split("\n")[1:]))
    with pytest.raises(DataError, match=r"6-name2semantic.tsv:1: expected the header .*the header line is missing"):
        ExperimentFolder(copy)


def test_file_names_in_another_unicode_form_are_matched(tmp_path):
    """A copy through macOS may leave the files decomposed (NFD) while 2-name2text.txt spells them composed."""
    names = ["가나다 é.wav", "ガギ#1.wav"]
    records = [dataclasses.replace(r, name=n) for r, n in zip(_records(2, "wav"), names)]
    written = write_experiment(tmp_path / "exp", records)
    for part, suffix in (("5-wav32k", ""), ("4-cnhubert", ".pt"), ("3-bert", ".pt")):
        for name in names:
            f = written.path / part / f"{name}{suffix}"
            if f.exists():
                f.rename(f.with_name(unicodedata.normalize("NFD", f.name)))
    folder = ExperimentFolder(written.path, strict=True)
    assert folder.names == names
    first = folder[names[0]]
    assert first.wav_path.name == unicodedata.normalize("NFD", names[0]) != names[0]
    assert torch.equal(first.load_bert(), records[0].bert)
    assert torch.equal(first.load_hubert(), records[0].hubert.float())


# --------------------------------------------------------------------------- GPT dataset


def test_gpt_dataset_items(synth):
    ds = GPTDataset(synth)
    assert len(ds) == 6
    for i, item in enumerate(synth):
        s = ds[i]
        assert s.phone_ids.tolist() == phones_to_ids(item.phones, "v2")
        assert s.bert.dtype == torch.float32 and s.bert.shape == (1024, item.n_phones)
        assert s.codes.tolist() == list(item.codes)
        if item.bert_path is None:
            assert not s.bert.any()
        else:
            assert torch.equal(s.bert, torch.load(item.bert_path, weights_only=True).float())


def test_gpt_filters_are_parameters(synth):
    ds = GPTDataset(synth, max_codes=30)
    long_ones = [i.name for i in synth if len(i.codes) > 30]
    assert long_ones and sorted(ds.dropped) == sorted(long_ones)
    assert "max_codes 30" in ds.dropped[long_ones[0]]
    ds = GPTDataset(synth, min_phones_per_s=11.0)
    slow = [i.name for i in synth if i.n_phones / (len(i.codes) / 25) < 11.0]
    assert slow and sorted(ds.dropped) == sorted(slow)
    with pytest.raises(DataError, match="no GPT items left"):
        GPTDataset(synth, max_phones=1)


def test_gpt_dataset_needs_codes(copy, synth):
    (copy / "6-name2semantic.tsv").unlink()
    folder = ExperimentFolder(copy)
    with pytest.raises(DataError, match="no GPT items left"):
        GPTDataset(folder)
    with pytest.raises(DataError, match=rf"item '{synth.names[0]}' has no codes"):
        GPTDataset(folder, names=[synth.names[0]])


@pytest.mark.parametrize("side", ["left", "right"])
def test_gpt_collate_padding(synth, side):
    ds = GPTDataset(synth)
    samples = [ds[i] for i in range(4)]
    batch = gpt_collate(samples, phone_pad_side=side)
    tx = max(len(s.phone_ids) for s in samples)
    ty = max(len(s.codes) for s in samples)
    assert batch.phone_ids.shape == (4, tx) and batch.bert.shape == (4, 1024, tx) and batch.codes.shape == (4, ty)
    assert batch.names == tuple(s.name for s in samples)
    for i, s in enumerate(samples):
        n, m = len(s.phone_ids), len(s.codes)
        real = slice(tx - n, tx) if side == "left" else slice(0, n)
        pad = slice(0, tx - n) if side == "left" else slice(n, tx)
        assert torch.equal(batch.phone_ids[i, real], s.phone_ids)
        assert torch.equal(batch.bert[i, :, real], s.bert)
        assert not batch.phone_ids[i, pad].any() and not batch.bert[i, :, pad].any()
        assert torch.equal(batch.codes[i, :m], s.codes)
        assert (batch.codes[i, m:] == CODE_PAD).all()
    assert batch.phone_lengths.tolist() == [len(s.phone_ids) for s in samples]
    assert batch.code_lengths.tolist() == [len(s.codes) for s in samples]
    assert any(len(s.phone_ids) < tx for s in samples)  # the test exercised padding


def test_gpt_dataset_works_with_a_dataloader(synth):
    from torch.utils.data import DataLoader

    from autocompress.models.gpt_sovits.data import gpt_collate_fn

    train, _ = synth.split(0.34, seed=0)
    loader = DataLoader(GPTDataset(synth, names=train), batch_size=2, collate_fn=gpt_collate_fn("right"))
    batches = list(loader)
    assert [len(b.names) for b in batches] == [2, 2]
    assert batches[0].phone_pad_side == "right"


# --------------------------------------------------------------------------- SoVITS dataset


def test_sovits_sample_shapes_and_replicate_pad(synth):
    ds = SoVITSDataset(synth, config=sovits_tiny())
    padded = 0
    for i, item in enumerate(ds.items):
        s = ds[i]
        frames = item.n_samples // 640
        assert s.spec.shape == (1025, frames) and s.ssl.shape == (768, frames)
        assert s.wav.shape == (1, item.n_samples) and s.sv is None
        assert s.text.tolist() == phones_to_ids(item.phones, "v2")
        hubert = item.load_hubert()[0]
        assert torch.equal(s.ssl[:, : item.hubert_frames], hubert)
        if item.hubert_frames == frames - 1:
            assert torch.equal(s.ssl[:, -1], hubert[:, -1])  # replicated last frame
            padded += 1
    assert padded > 0  # the synthetic set holds items that need the pad


def test_sovits_spec_is_the_raw_linear_spectrogram(synth):
    ds = SoVITSDataset(synth)
    s = ds[0]
    expected = spectrogram_raw(ds.items[0].load_wav()[None])[0]
    torch.testing.assert_close(s.spec, expected)
    # Independent check of one frame: |rfft| of the reflect-padded, Hann-windowed slice.
    wav = s.wav[0].double()
    padded = torch.nn.functional.pad(wav[None, None], (704, 704), mode="reflect")[0, 0]
    frame = padded[3 * 640 : 3 * 640 + 2048] * torch.hann_window(2048, dtype=torch.float64)
    mag = torch.sqrt(torch.fft.rfft(frame).abs() ** 2 + 1e-8)
    torch.testing.assert_close(s.spec[:, 3].double(), mag, rtol=1e-4, atol=1e-4)


def test_sovits_collate_sorts_and_pads(synth):
    ds = SoVITSDataset(synth)
    samples = [ds[i] for i in range(5)]
    batch = sovits_collate(samples)
    order = sorted(samples, key=lambda s: s.spec.shape[-1], reverse=True)
    assert batch.names == tuple(s.name for s in order)
    assert batch.spec_lengths.tolist() == sorted(batch.spec_lengths.tolist(), reverse=True)
    max_spec = max(s.spec.shape[-1] for s in samples)
    assert batch.spec.shape == (5, 1025, 2 * (max_spec // 2 + 1))
    assert batch.ssl.shape == (5, 768, 2 * (max(s.ssl.shape[-1] for s in samples) // 2 + 1))
    assert batch.spec.shape[-1] % 2 == 0 and batch.spec.shape[-1] > max_spec
    assert batch.wav.shape == (5, 1, max(s.wav.shape[-1] for s in samples))
    assert batch.text.shape == (5, max(len(s.text) for s in samples)) and batch.text.dtype == torch.long
    for i, s in enumerate(order):
        f, n, p = s.spec.shape[-1], s.wav.shape[-1], len(s.text)
        assert torch.equal(batch.spec[i, :, :f], s.spec) and not batch.spec[i, :, f:].any()
        assert torch.equal(batch.ssl[i, :, :f], s.ssl) and not batch.ssl[i, :, f:].any()
        assert torch.equal(batch.wav[i, :, :n], s.wav) and not batch.wav[i, :, n:].any()
        assert torch.equal(batch.text[i, :p], s.text) and not batch.text[i, p:].any()
        assert (batch.ssl_lengths[i], batch.spec_lengths[i], batch.wav_lengths[i], batch.text_lengths[i]) == (f, f, n, p)
    assert batch.sv is None


def test_sovits_duration_filter_and_names(synth):
    shortest = min(synth, key=lambda i: i.duration_s)
    ds = SoVITSDataset(synth, min_seconds=shortest.duration_s + 1e-6)
    assert list(ds.dropped) == [shortest.name]
    ds = SoVITSDataset(synth, names=synth.names[:2])
    assert [i.name for i in ds.items] == synth.names[:2]
    with pytest.raises(DataError, match="no item named 'nope.wav'"):
        SoVITSDataset(synth, names=["nope.wav"])


def test_pro_folder_gives_sv(tmp_path):
    folder = make_synthetic_experiment(tmp_path / "pro", n_items=3, seed=2, version="v2Pro")
    assert folder.summary()["with_sv"] == 3
    ds = SoVITSDataset(folder, config=sovits_v2pro())
    batch = sovits_collate([ds[0], ds[1]])
    assert batch.sv.shape == (2, 20480)
    first = folder[batch.names[0]]
    assert torch.equal(batch.sv[0], first.load_sv()[0])
    with pytest.raises(DataError, match="needs speaker-verification embeddings"):
        SoVITSDataset(ExperimentFolder(folder.path, version="v2"), config=sovits_v2pro())
    torch.save(torch.zeros(1, 100), folder.path / "7-sv_cn" / f"{first.name}.pt")
    with pytest.raises(DataError, match=rf"7-sv_cn/{first.name}.pt: tensor of shape \[1, 100\]"):
        ExperimentFolder(folder.path, version="v2Pro", strict=True)


# --------------------------------------------------------------------------- writer


def _records(n: int, ext: str) -> list[ExperimentRecord]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        samples = 32000 + 640 * i + 300
        phones = ["HH", "AH0", "L", "OW1", ",", "W", "ER1", "L", "D"][: 5 + i]
        out.append(
            ExperimentRecord(
                name=f"utt{i}.{ext}",
                phones=phones,
                norm_text=f"hello world {i}",
                wav=(0.5 * rng.standard_normal(samples)).clip(-1, 1).astype(np.float32),
                hubert=torch.randn(1, 768, hubert_frames_for(samples)).half(),
                codes=rng.integers(0, 1024, hubert_frames_for(samples) // 2).tolist() if i != 1 else None,
                bert=torch.randn(1024, len(phones)) if i == 0 else None,
                word2ph=[1, 2] if i == 2 else None,
            )
        )
    return out


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_written_folder_reads_back_identically(tmp_path, ext):
    records = _records(3, ext)
    folder = write_experiment(tmp_path / "exp", records, audio_format=ext)
    assert folder.names == [r.name for r in records]
    info = soundfile.info(str(folder.path / "5-wav32k" / records[0].name))
    assert (info.format, info.subtype, info.samplerate) == (ext.upper(), "PCM_16", 32000)
    for r, item in zip(records, folder):
        assert item.phones == tuple(r.phones) and item.norm_text == r.norm_text
        assert item.codes == (tuple(r.codes) if r.codes is not None else None)
        assert torch.equal(item.load_hubert(), r.hubert.float())
        assert torch.equal(torch.load(item.hubert_path, weights_only=True), r.hubert)  # dtype kept
        expected = np.clip(np.round(r.wav.astype(np.float64) * 32768), -32768, 32767) / 32768
        assert torch.equal(item.load_wav(), torch.from_numpy(expected.astype(np.float32)))
        if r.bert is None:
            assert item.bert_path is None
        else:
            assert torch.equal(item.load_bert(), r.bert)
    assert folder[records[2].name].word2ph == "[1, 2]" and folder[records[0].name].word2ph == "None"
    lines = (folder.path / "6-name2semantic.tsv").read_text().splitlines()
    assert lines[0] == "item_name\tsemantic_audio" and len(lines) == 3  # item 1 has no codes


def test_writer_refuses_bad_records_and_existing_folders(tmp_path):
    good = _records(1, "wav")[0]
    bad_cases = [
        (good.__class__(**{**good.__dict__, "name": "utt0.flac"}), "must end in .wav"),
        (good.__class__(**{**good.__dict__, "phones": ["AA1", "NOPE"]}), "unknown phone symbol 'NOPE'"),
        (good.__class__(**{**good.__dict__, "wav": good.wav * 3}), r"within \[-1, 1\]"),
        (good.__class__(**{**good.__dict__, "hubert": torch.zeros(768, 10)}), r"hubert has shape \[768, 10\]"),
        (good.__class__(**{**good.__dict__, "codes": [5, 1024]}), "codes must be"),
        (good.__class__(**{**good.__dict__, "codes": list(good.codes) + [3]}), r"codes for \d+ HuBERT frames"),
        (good.__class__(**{**good.__dict__, "bert": torch.zeros(1024, 2)}), r"bert has shape"),
    ]
    for record, message in bad_cases:
        with pytest.raises(DataError, match=message):
            write_experiment(tmp_path / "bad", [record])
        assert not (tmp_path / "bad").exists()  # nothing written
    with pytest.raises(DataError, match="need an sv embedding"):
        write_experiment(tmp_path / "bad", [good], version="v2Pro")
    write_experiment(tmp_path / "exp", [good])
    with pytest.raises(DataError, match="already exists"):
        write_experiment(tmp_path / "exp", [good])
    other = _records(2, "wav")[1]
    folder = write_experiment(tmp_path / "exp", [other], overwrite=True)
    assert folder.names == [other.name] and not (folder.path / "3-bert").exists()
