"""Behaviour of Text2SemanticGPT on tiny random models: cache, pruned shapes, training, sampler."""

from __future__ import annotations

import math

import pytest
import torch

from autocompress.exceptions import ConfigError, DataError
from autocompress.models.gpt_sovits.config import GPTConfig, gpt_tiny
from autocompress.models.gpt_sovits.gpt import (
    Text2SemanticGPT,
    apply_repetition_penalty_,
    prefix_lm_allowed,
    sampling_probs,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = GPTConfig(hidden_dim=32, n_head=4, n_layer=2, ffn_dim=64, phoneme_vocab_size=50)


def make(config: GPTConfig = TINY, seed: int = 0) -> Text2SemanticGPT:
    torch.manual_seed(seed)
    model = Text2SemanticGPT(config).eval()
    with torch.no_grad():  # non-trivial values everywhere (biases, norms, alpha start constant)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.ar_predict_layer.weight.mul_(3.0)
    return model


def text_inputs(n: int, seed: int = 1, vocab: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (1, n), generator=g), 0.1 * torch.randn(1, 1024, n, generator=g)


def test_state_dict_uses_upstream_names():
    keys = set(make(gpt_tiny()).state_dict())
    assert {
        "bert_proj.weight", "bert_proj.bias", "ar_text_embedding.word_embeddings.weight",
        "ar_text_position.alpha", "ar_audio_embedding.word_embeddings.weight", "ar_audio_position.alpha",
        "h.layers.2.self_attn.in_proj_weight", "h.layers.2.self_attn.in_proj_bias",
        "h.layers.2.self_attn.out_proj.weight", "h.layers.2.self_attn.out_proj.bias",
        "h.layers.2.linear1.weight", "h.layers.2.linear2.bias", "h.layers.2.norm1.weight",
        "h.layers.2.norm2.bias", "ar_predict_layer.weight",
    } <= keys
    assert "ar_predict_layer.bias" not in keys
    assert not any(k.endswith(".pe") for k in keys)
    assert len(keys) == 6 + 1 + 12 * 3  # 6 embedding/proj tensors + output layer + 12 per layer


def test_prefix_mask():
    allowed = prefix_lm_allowed(2, 4)
    expected = torch.tensor(
        [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool
    )
    assert torch.equal(allowed, expected)


@pytest.mark.parametrize("tensor_pos", [False, True])
def test_cached_decoding_equals_full_recompute(tensor_pos):
    model = make()
    phones, bert = text_inputs(7)
    prompt = torch.tensor([[5, 900, 17]])
    new = torch.tensor([[3, 1000, 3, 44]])
    with torch.no_grad():
        logits, cache = model.prefill(phones, bert, prompt, max_len=20)
        ptrs = [t.data_ptr() for t in cache.k + cache.v]
        for i in range(new.shape[1]):
            pos = cache.length if not tensor_pos else torch.tensor(10 + i)
            logits = model.decode_step(new[:, i : i + 1], cache, pos)
            full = model.prefill_logits(phones, bert, torch.cat([prompt, new[:, : i + 1]], 1))
            torch.testing.assert_close(logits, full, atol=1e-5, rtol=1e-5)
    assert [t.data_ptr() for t in cache.k + cache.v] == ptrs  # written in place, never re-allocated
    if not tensor_pos:
        assert cache.length == 14


def test_reference_free_prefill_and_decode():
    model = make()
    phones, bert = text_inputs(5)
    with torch.no_grad():
        logits, cache = model.prefill(phones, bert, None, max_len=8)
        first = model.decode_step(torch.tensor([[7]]), cache, cache.length)
        torch.testing.assert_close(first, model.prefill_logits(phones, bert, torch.tensor([[7]])))
    assert logits.shape == (1, 1025)


def _prune(full: Text2SemanticGPT, heads_keep: list[list[int]], ffn_keep: list[list[int]]) -> Text2SemanticGPT:
    """Build the per-layer-width model holding the kept heads / FFN units of ``full``."""
    cfg = full.config
    hd = cfg.head_dim
    pruned = Text2SemanticGPT(
        cfg.replace(layer_heads=tuple(len(h) for h in heads_keep), layer_ffn=tuple(len(f) for f in ffn_keep))
    ).eval()
    state = dict(full.state_dict())
    for i, (heads, units) in enumerate(zip(heads_keep, ffn_keep)):
        p = f"h.layers.{i}."
        cols = torch.cat([torch.arange(h * hd, (h + 1) * hd) for h in heads])
        rows = torch.cat([cols + j * cfg.hidden_dim for j in range(3)])  # q, k, v blocks
        state[p + "self_attn.in_proj_weight"] = state[p + "self_attn.in_proj_weight"][rows]
        state[p + "self_attn.in_proj_bias"] = state[p + "self_attn.in_proj_bias"][rows]
        state[p + "self_attn.out_proj.weight"] = state[p + "self_attn.out_proj.weight"][:, cols]
        units_t = torch.tensor(units)
        state[p + "linear1.weight"] = state[p + "linear1.weight"][units_t]
        state[p + "linear1.bias"] = state[p + "linear1.bias"][units_t]
        state[p + "linear2.weight"] = state[p + "linear2.weight"][:, units_t]
    pruned.load_state_dict(state, strict=True)
    return pruned


def test_per_layer_heads_and_ffn_widths_are_exact_pruning():
    full = make()
    heads_keep = [[0, 2, 3], [1]]
    ffn_keep = [list(range(0, 64, 2)), list(range(10, 50))]
    # Silence the dropped heads (v rows) and FFN units (linear2 columns) in the full model:
    # its output must then equal the narrow model's exactly.
    hd, d = full.config.head_dim, full.config.hidden_dim
    with torch.no_grad():
        for i, (heads, units) in enumerate(zip(heads_keep, ffn_keep)):
            layer = full.h.layers[i]
            for h in set(range(4)) - set(heads):
                layer.self_attn.in_proj_weight[2 * d + h * hd : 2 * d + (h + 1) * hd] = 0
                layer.self_attn.in_proj_bias[2 * d + h * hd : 2 * d + (h + 1) * hd] = 0
            for u in set(range(64)) - set(units):
                layer.linear2.weight[:, u] = 0
    pruned = _prune(full, heads_keep, ffn_keep)
    assert pruned.h.layers[1].self_attn.in_proj_weight.shape == (3 * 8, 32)
    assert pruned.h.layers[1].linear1.weight.shape == (40, 32)
    phones, bert = text_inputs(6)
    prompt = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        torch.testing.assert_close(pruned.prefill_logits(phones, bert, prompt), full.prefill_logits(phones, bert, prompt))
    a = pruned.generate(phones, bert, prompt, top_k=1, max_new_tokens=15)
    b = full.generate(phones, bert, prompt, top_k=1, max_new_tokens=15)
    assert torch.equal(a, b)


def _batch(lengths_x, lengths_y, seed=3):
    g = torch.Generator().manual_seed(seed)
    b, tx, ty = len(lengths_x), max(lengths_x), max(lengths_y)
    phones = torch.randint(1, 50, (b, tx), generator=g)
    bert = 0.1 * torch.randn(b, 1024, tx, generator=g)
    codes = torch.randint(0, 1024, (b, ty), generator=g)
    for i, (lx, ly) in enumerate(zip(lengths_x, lengths_y)):
        phones[i, lx:] = 0
        bert[i, :, lx:] = 0
        codes[i, ly:] = 1024
    return phones, torch.tensor(lengths_x), bert, codes, torch.tensor(lengths_y)


def test_forward_train_targets_and_teacher_forcing():
    model = make()
    phones, plen, bert, codes, clen = _batch([6, 4], [5, 3])
    with torch.no_grad():
        logits, targets = model.forward_train(phones, plen, bert, codes, clen)
        assert logits.shape == (2, 6, 1025)
        assert targets.tolist()[1] == codes[1, :3].tolist() + [1024, 1024, 1024]
        assert targets.tolist()[0] == codes[0].tolist() + [1024]
        # Every item equals the single-sequence computation (prefill with a growing prompt).
        for i, (lx, ly) in enumerate([(6, 5), (4, 3)]):
            for t in range(ly + 1):
                single = model.prefill_logits(phones[i : i + 1, :lx], bert[i : i + 1, :, :lx], codes[i : i + 1, :t])
                torch.testing.assert_close(logits[i, t], single[0], atol=1e-5, rtol=1e-5)


def test_forward_train_reads_another_history_but_keeps_the_targets():
    model = make()
    phones, plen, bert, codes, clen = _batch([6, 4], [5, 3])
    history = codes.clone()
    history[0, 2] = (history[0, 2] + 1) % 1024  # item 0 reads a wrong code at audio position 2
    with torch.no_grad():
        logits, targets = model.forward_train(phones, plen, bert, codes, clen)
        same, _ = model.forward_train(phones, plen, bert, codes, clen, history=codes)
        other, other_targets = model.forward_train(phones, plen, bert, codes, clen, history=history)
        # the single-sequence computation with the wrong code in the prompt agrees
        single = model.prefill_logits(phones[:1], bert[:1], history[:1, :3])
    torch.testing.assert_close(same, logits)
    assert torch.equal(other_targets, targets)
    torch.testing.assert_close(other[:, :3], logits[:, :3])  # positions before it do not see it
    assert (other[0, 3:] - logits[0, 3:]).abs().max() > 1e-4
    torch.testing.assert_close(other[1], logits[1])  # nor does the other item
    torch.testing.assert_close(other[0, 3], single[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(DataError, match="history"):
        model.forward_train(phones, plen, bert, codes, clen, history=codes[:, :-1])


def test_gpt_loss_history_noise_feeds_the_models_own_guesses():
    from autocompress.models.gpt_sovits.training import gpt_loss

    model = make().eval()
    phones, plen, _, codes, clen = _batch([6, 4], [5, 3])
    clean = gpt_loss(model, phones, plen, codes, clen)[0]
    none = gpt_loss(model, phones, plen, codes, clen, history_noise=1e-9)[0]
    torch.testing.assert_close(none, clean)  # nothing swapped: the same loss
    bert = torch.zeros(2, model.config.bert_dim, phones.shape[1])
    with torch.no_grad():
        guesses = model.forward_train(phones, plen, bert, codes, clen)[0][:, :-1, :1024].argmax(-1)
        expected = model.forward_train(phones, plen, bert, codes, clen, history=guesses)[0]
    noisy = gpt_loss(model, phones, plen, codes, clen, history_noise=1.0)[0]  # every code is a guess
    t = torch.arange(6)[None, :] <= clen[:, None]
    targets = model.forward_train(phones, plen, bert, codes, clen)[1]
    ce = torch.nn.functional.cross_entropy(expected.transpose(1, 2), targets, reduction="none")
    torch.testing.assert_close(noisy, (ce * t).sum() / t.sum())
    assert abs(float(noisy) - float(clean)) > 1e-4


def test_upstream_pad_quirk_masks_the_leading_phones():
    model = make()
    phones, plen, bert, codes, clen = _batch([6, 4], [5, 5])
    changed = phones.clone()
    changed[1, :2] = (changed[1, :2] + 7) % 50  # the first 2 = 6 - 4 positions of the short item
    with torch.no_grad():
        quirk = model.forward_train(phones, plen, bert, codes, clen, upstream_pad_quirk=True)[0]
        quirk2 = model.forward_train(changed, plen, bert, codes, clen, upstream_pad_quirk=True)[0]
        sane = model.forward_train(phones, plen, bert, codes, clen)[0]
        sane2 = model.forward_train(changed, plen, bert, codes, clen)[0]
        equal_len = _batch([6, 6], [5, 5])
        q_eq = model.forward_train(*equal_len, upstream_pad_quirk=True)[0]
        s_eq = model.forward_train(*equal_len)[0]
    torch.testing.assert_close(quirk, quirk2)  # upstream ignores those real phones
    assert (sane2[1] - sane[1]).abs().max() > 1e-3  # we do not
    torch.testing.assert_close(quirk[0], sane[0])  # the full-length item is unaffected
    assert (quirk[1] - sane[1]).abs().max() > 1e-3
    torch.testing.assert_close(q_eq, s_eq)  # without padding both agree


def test_dropout_only_in_training_mode():
    model = make()
    batch = _batch([5, 5], [4, 4])
    model.train()
    a, b = model.forward_train(*batch)[0], model.forward_train(*batch)[0]
    assert (a - b).abs().max() > 1e-4
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.forward_train(*batch)[0], model.forward_train(*batch)[0])


def test_repetition_penalty_in_place_once_per_token():
    logits = torch.tensor([[2.0, -1.0, 3.0, 0.5]])
    out = apply_repetition_penalty_(logits, torch.tensor([[0, 1, 1, 0]]), 2.0)
    assert out is logits
    assert logits.tolist() == [[1.0, -2.0, 3.0, 0.5]]


def test_top_p_removes_the_crossing_token_and_top_k_keeps_ties():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    probs = sampling_probs(logits.clone(), top_k=4, top_p=0.85, temperature=1.0)
    # cumulative 0.5, 0.8, 0.95, 1.0: the token crossing 0.85 is removed too (no shift)
    assert probs[0, 2] == 0 and probs[0, 3] == 0 and probs[0, 1] > 0
    probs = sampling_probs(logits.clone(), top_k=1, top_p=0.1, temperature=1.0)
    assert probs.tolist() == [[1.0, 0.0, 0.0, 0.0]]  # the top token always stays
    ties = sampling_probs(torch.tensor([[1.0, 2.0, 2.0, 0.0]]), top_k=1, top_p=1.0, temperature=1.0)
    assert ties[0, 1] == ties[0, 2] == 0.5
    sharp = sampling_probs(torch.tensor([[1.0, 2.0, 0.0]]), top_k=3, top_p=1.0, temperature=0.5)
    torch.testing.assert_close(sharp, torch.softmax(torch.tensor([[2.0, 4.0, 0.0]]), -1))


def _always_eos(model: Text2SemanticGPT) -> None:
    """Make EOS the argmax at every position: constant final hidden state aligned with row EOS."""
    with torch.no_grad():
        last = model.h.layers[-1].norm2
        last.weight.zero_()
        last.bias.copy_(torch.linspace(-1, 1, last.bias.numel()))
        model.ar_predict_layer.weight.mul_(0.01)
        model.ar_predict_layer.weight[model.config.eos] = 10 * last.bias


def test_eos_is_banned_for_eleven_steps_then_stops():
    model = make()
    _always_eos(model)
    phones, bert = text_inputs(4)
    out = model.generate_detailed(phones, bert, torch.tensor([[9, 8]]), top_k=5, repetition_penalty=1.0)
    assert out.stop_reason == "eos" and out.idx == 11
    assert out.tokens.shape == (1, 11) and (out.tokens != 1024).all()
    assert out.y.shape == (1, 13) and out.samples.shape == (1, 12)
    assert out.samples[0, -1] == 1024
    assert torch.isnan(out.logits_decision[:11, 1024]).all()
    assert not torch.isnan(out.logits_decision[11]).any()


def test_max_new_tokens_and_reference_free():
    model = make()
    phones, bert = text_inputs(4)
    out = model.generate_detailed(phones, bert, None, top_k=1, max_new_tokens=7)
    assert out.tokens.shape == (1, 7) and out.idx == 0 and out.stop_reason == "max_new_tokens"
    assert torch.equal(out.tokens, out.y)


def _slow_greedy(model, phones, bert, prompt, n, rp):
    """Greedy decoding without any cache: recompute the whole prefix for every token."""
    y = prompt.clone()
    with torch.no_grad():
        for idx in range(n):
            logits = model.prefill_logits(phones, bert, y)
            logits = logits[:, :1024] if idx < 11 else logits.clone()
            apply_repetition_penalty_(logits, y, rp)
            y = torch.cat([y, logits.argmax(-1, keepdim=True)], 1)
    return y[:, prompt.shape[1] :]


def test_greedy_generation_equals_uncached_reference():
    model = make(seed=5)
    phones, bert = text_inputs(6, seed=7)
    prompt = torch.tensor([[3, 3, 700, 12]])
    got = model.generate(phones, bert, prompt, top_k=1, repetition_penalty=1.35, max_new_tokens=14)
    assert torch.equal(got, _slow_greedy(model, phones, bert, prompt, 14, 1.35))


def test_sampling_is_seeded_and_follows_top_k():
    model = make()
    phones, bert = text_inputs(5)
    prompt = torch.tensor([[1, 2]])
    run = lambda seed: model.generate(  # noqa: E731
        phones, bert, prompt, top_k=15, temperature=2.0, max_new_tokens=12,
        generator=torch.Generator().manual_seed(seed),
    )
    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))
    detail = model.generate_detailed(
        phones, bert, prompt, top_k=3, max_new_tokens=12, generator=torch.Generator().manual_seed(4)
    )
    for step in range(12):
        top3 = detail.logits_decision[step].nan_to_num(-math.inf).topk(3).indices
        assert detail.samples[0, step] in top3


def test_bad_inputs_raise_one_line_errors():
    model = make()
    phones, bert = text_inputs(5)
    with pytest.raises(DataError, match="bert must be"):
        model.prefill_logits(phones, bert[:, :, :4])
    with pytest.raises(ConfigError, match="top_k"):
        model.generate(phones, bert, top_k=0)
    with pytest.raises(DataError, match="one sequence"):
        model.generate(phones.repeat(2, 1), bert.repeat(2, 1, 1))


def test_batch_generation_equals_single_runs():
    model = make(seed=2)
    texts = [text_inputs(n, seed=n) for n in (3, 7, 5)]
    phones, bert = [p[0] for p, _ in texts], [b[0] for _, b in texts]
    prompt = torch.tensor([[4, 4, 90]])
    out = model.generate_batch(phones, bert, prompt, top_k=1, max_new_tokens=13)
    for i, (p, b) in enumerate(texts):
        single = model.generate_detailed(p, b, prompt, top_k=1, max_new_tokens=13)
        assert torch.equal(out.tokens[i], single.tokens[0]) and out.idx[i] == single.idx == 12
        assert torch.equal(out.y[i], single.y[0, :-1])  # upstream's batch path drops the last entry
    with torch.no_grad():  # the static-shape decode path honours the padding mask too
        _, cache = model.prefill_batch(phones, bert, prompt, max_len=12)
        a = model.decode_step(torch.tensor([[7], [7], [7]]), cache, torch.tensor(10))
        _, cache = model.prefill_batch(phones, bert, prompt, max_len=12)
        b = model.decode_step(torch.tensor([[7], [7], [7]]), cache, 10)
    torch.testing.assert_close(a, b)
    _always_eos(model)
    out = model.generate_batch(phones, bert, prompt, top_k=1)
    assert out.idx == [11, 11, 11] and all(t.shape == (11,) for t in out.tokens)


def test_phone_ids_outside_the_vocabulary_are_a_data_error():
    """v2-only phone ids (above 511) given to a v1 GPT: one clear error, not an IndexError."""
    gpt = Text2SemanticGPT(gpt_tiny().replace(phoneme_vocab_size=512, version="v1")).eval()
    phones = torch.tensor([[3, 600, 7]])
    bert = torch.zeros(1, gpt.config.bert_dim, 3)
    with pytest.raises(DataError, match=r"phone ids must be in 0..511 .*got 3..600"):
        gpt.generate(phones, bert, None, top_k=1, max_new_tokens=2)
    with pytest.raises(DataError, match=r"got -1..7"):
        gpt.prefill_logits(torch.tensor([[3, -1, 7]]), bert)


def test_a_v1_gpt_covers_the_v1_symbols_of_a_v2_voice_only():
    """The v2 table extends the v1 table in place: English phones of a v2 voice are v1 ids too."""
    from autocompress.models.gpt_sovits.text import english_to_phones, phones_to_ids, symbols
    from autocompress.models.gpt_sovits.voice import check_phone_coverage

    v1 = gpt_tiny().replace(phoneme_vocab_size=512, version="v1")
    english = english_to_phones("The red boat is here, isn't it?")
    assert phones_to_ids(english, "v2") == phones_to_ids(english, "v1")
    check_phone_coverage(v1, english, "v2")  # no error: upstream pairs these too
    assert phones_to_ids(["ㄱ"], "v2")[0] >= len(symbols("v1"))
    with pytest.raises(DataError, match=r"v1 GPT .* never trained on the phones \['ㄱ'\]"):
        check_phone_coverage(v1, [*english, "ㄱ"], "v2")
    check_phone_coverage(gpt_tiny(), [*english, "ㄱ"], "v2")  # a v2 GPT knows them all
