"""How close an exported graph is to the torch model it came from, and when that is enough.

Every output of a graph is compared over all evaluation inputs: the largest absolute error,
and the signal-to-noise ratio ``10 log10(sum ref^2 / sum (ref - got)^2)`` pooled over the
inputs. The rules (:class:`ParityBounds`):

- fp32 must match elementwise: ``|got - ref| <= atol + rtol * |ref|`` (1e-4, 1e-4).
- fp16 must keep every output's SNR >= 30 dB (it reaches 50-70 dB on the test models; less
  means a conversion problem, not rounding).
- int8 / int4 / int2 must keep every output's SNR at or above the module group's quality
  floor, whatever the precision: gpt 12 dB (logits; what matters is the token choice, whose
  top-1 agreement is recorded too), ref_enc 12, enc_p 12, flow 15 and dec 18 dB (the decoder
  writes the waveform people hear, so it gets the strictest floor). On the tiny random test
  models static int8 reaches 14-30 dB, int4 weight-only 20-26 dB, int2 0-14 dB.
- An integer graph that rounds its weight layers' inputs to the scored student's own static
  int8 ranges (an int8 rung, or the int8 part of an int4/int2 rung, of a group the trial was
  scored with such ranges for) is judged against the *scored* torch model instead: the plain
  model with those layers' weights on the per-channel s8 grid and their inputs rounded to the
  same ranges (:func:`~autocompress.export.references.scored_copy`), run on the same feeds.
  The search already judged that model's quality, so the question is only whether the graph
  computes it. At an int4/int2 rung only the int8 part is rounded so; its low-bit layers keep
  their stored weights and float inputs, as the graph; where the student rounded those inputs
  too (a plan with int8 activations), each output must also reach the faithfulness floor
  against the model as scored (``outputs_vs_scored_form``). Tiny test voice, ref_enc int4 with
  int8 convolutions and int8 activations: 51.3 dB against the rung's model, 46.3 against the
  model as scored (the whole-group int8 model, which rounds the int4 weights per channel too,
  gave 39.8 and rejected it); 15.4 against the model at half the ranges.
  Faithfulness floors (``scored_floor_db``): gpt 30, ref_enc 40, enc_p 30, flow 40
  and dec 17 dB, each 2 dB lower (``fp16_floats_margin_db``) for a graph whose float parts are
  fp16 (a GPU target's int8 / int4 graphs): its norms, residuals, attention and KV cache round
  to fp16 where the scored model keeps fp32, which moves more values across int8 rounding
  steps. Measured, lowest output against the scored model with fp16 float parts: the demo's
  trial 8 (gpt and dec int8 s8) gpt 35.4, dec 17.6 dB (21.7 with fp32 float parts; 14.5 and
  14.3 from the plain model either way); tiny test voice gpt 37.9, ref_enc 48.6, enc_p 31.5,
  flow 53.6, dec 34.0. The decoder's near misses measured below (at most 14.1 dB) still fail. The SNR against the plain model is recorded beside it (``outputs_vs_plain``)
  and does not gate. A faithful graph never matches exactly: float differences between
  onnxruntime's and torch's kernels move a few values across a rounding step, and every later
  rounded layer spreads that (the demo decoder's first rounded inputs already differ at 56 dB).
  Measured, lowest output against the scored model: faithful graphs of the demo voice, every
  group int8, s8 / u8: gpt 36.3 / 36.0, ref_enc 71.5 / 58.7, enc_p 39.5 / 40.7, flow 47.6 /
  47.2, dec 20.7 / 26.4 dB (its trial 8, gpt and dec int8 s8: gpt 39.9, dec 21.7); of the tiny
  test voices 36-170 dB (enc_p lowest). The same graphs rounding to half the scored ranges
  reach at most gpt 18.0, ref_enc 19.2, enc_p 14.0, flow 30.5, dec 8.9 dB; to twice them gpt
  33.1, ref_enc 42.3, enc_p 32.1, flow 45.8 dB and the demo decoder 13.0; the demo decoder
  with the export's own calibration 14.1 (s8; u8 18.9), ranges 10 % wider 12.6 / 16.9 and the
  other int8 form 16.7 / 13.4 dB. Outside the decoder such near misses reach 32-72 dB and
  mostly pass: there they stay close to the scored model anyway. The demo decoder is 14.3 dB
  (s8) from the plain model, faithful or not, which the plain floor of 18 dB always rejected.
- The trial's int8 form is read off its ranges (s8 ones are ``(-amax, amax)``). s8 ranges in
  a u8 graph (a CPU target's form) take the s8 step and zero point 128, which rounds exactly as
  scored; the scored model above is then the one the search scored. u8 ranges cannot be
  rounded so by an s8 graph (a GPU target's form): it rounds them to ``max(|low|, |high|)``,
  the scored model of the check rounds them the same way, and each output must also reach the
  faithfulness floor against the model as scored (``outputs_vs_scored_form``), since the
  search never judged the re-rounded one. Tiny test voice, gpt and dec int8, lowest output
  against the model as scored: s8 trial in u8 graphs gpt 36.8, dec 45.8 dB before, 134-139
  after (float rounding); u8 trial in s8 graphs gpt 35.5, dec 55.7 dB (pass).
- An output holding NaN or inf where the torch model's does not fails at every precision.
- The SoVITS chain end to end (waveform, bundle as written) must reach 60 dB when all of it
  is fp32, 25 dB when its lowest precision is fp16 and 10 dB otherwise, against the chain of
  the torch models its graphs were judged against (the scored model for a group judged so,
  the plain one for the others); its SNR against the plain chain is recorded beside it. The
  demo's trial 8 with its int8 decoder: 21.6 dB against that chain, 14.3 against the plain
  one; the demo voice with every group int8: 14.7 and 9.2 dB (errors of the groups compound).
- The greedy GPT codes end to end: an fp32 GPT must give torch's codes (near ties aside). A
  GPT checked against the scored model is compared with the scored model's greedy decoding:
  its logits, over the steps up to the first code that parts, must reach the GPT's
  faithfulness floor (its graph checks saw only a few decode steps fed torch's cache; this is
  every step on the runner's own cache). Its codes are not required to match: a faithful
  graph still parts wherever the scored model's top two logits were closer than the graph's
  error. The code match against the scored and the plain model is recorded. Any other GPT's
  code match (against the plain model) is information only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from autocompress.exceptions import ConfigError

FP16_MIN_SNR_DB = 30.0
GROUP_FLOOR_DB: dict[str, float] = {"gpt": 12.0, "ref_enc": 12.0, "enc_p": 12.0, "flow": 15.0, "dec": 18.0}
# Faithfulness to the scored model (see above): the lowest SNR of a faithful graph measured, less 4-19 dB.
SCORED_FLOOR_DB: dict[str, float] = {"gpt": 30.0, "ref_enc": 40.0, "enc_p": 30.0, "flow": 40.0, "dec": 17.0}
E2E_FLOOR_DB: dict[str, float] = {"fp32": 60.0, "fp16": 25.0, "int8": 10.0, "int4": 10.0, "int2": 10.0}
# How much lower the faithfulness floors are for an integer graph whose float parts are fp16 (a
# GPU target's): its norms, residuals and attention round to fp16 where the scored model keeps
# fp32, which moves more values across int8 rounding steps (see the module docstring).
FP16_FLOATS_MARGIN_DB = 2.0


@dataclass(frozen=True)
class ParityBounds:
    """Pass/fail rules of the parity checks (see the module docstring for the defaults).

    Attributes:
        fp32_atol, fp32_rtol: elementwise tolerance for graphs stored in fp32.
        fp16_min_snr_db: SNR every output of an fp16 graph must reach.
        group_floor_db: per module group, the SNR every output of an integer graph must reach.
        e2e_min_snr_db: SNR of the whole SoVITS chain's waveform, keyed by the lowest
            precision among its groups.
        scored_floor_db: per module group, the SNR every output of an integer graph must
            reach against the scored torch model, when it is judged against that.
        fp16_floats_margin_db: how much lower ``scored_floor_db`` is for an integer graph
            whose float parts are fp16.
    """

    fp32_atol: float = 1e-4
    fp32_rtol: float = 1e-4
    fp16_min_snr_db: float = FP16_MIN_SNR_DB
    group_floor_db: Mapping[str, float] = field(default_factory=lambda: dict(GROUP_FLOOR_DB))
    e2e_min_snr_db: Mapping[str, float] = field(default_factory=lambda: dict(E2E_FLOOR_DB))
    scored_floor_db: Mapping[str, float] = field(default_factory=lambda: dict(SCORED_FLOOR_DB))
    fp16_floats_margin_db: float = FP16_FLOATS_MARGIN_DB

    def __post_init__(self) -> None:
        problems = []
        if self.fp32_atol < 0 or self.fp32_rtol < 0:
            problems.append("fp32 tolerances must be >= 0")
        values = {"fp16_min_snr_db": self.fp16_min_snr_db, "fp16_floats_margin_db": self.fp16_floats_margin_db}
        values.update({f"group_floor_db[{k!r}]": v for k, v in self.group_floor_db.items()})
        values.update({f"e2e_min_snr_db[{k!r}]": v for k, v in self.e2e_min_snr_db.items()})
        values.update({f"scored_floor_db[{k!r}]": v for k, v in self.scored_floor_db.items()})
        for name, v in values.items():
            if not isinstance(v, (int, float)) or math.isnan(v):
                problems.append(f"{name} must be a number, got {v!r}")
        if problems:
            raise ConfigError("invalid ParityBounds: " + "; ".join(problems))

    def floor(self, group: str, precision: str, scored: bool = False, floats: str = "fp32") -> float:
        """The SNR floor of a graph of ``group`` stored at ``precision`` (not fp32); ``scored``:
        of an integer graph judged against the scored torch model, whose float parts run in
        ``floats``."""
        if precision == "fp16":
            return self.fp16_min_snr_db
        if scored:
            if group not in self.scored_floor_db:
                raise ConfigError(f"no faithfulness floor for module group {group!r}; set ParityBounds.scored_floor_db")
            margin = self.fp16_floats_margin_db if floats == "fp16" else 0.0
            return self.scored_floor_db[group] - margin
        if group not in self.group_floor_db:
            raise ConfigError(f"no quality floor for module group {group!r}; set ParityBounds.group_floor_db")
        return self.group_floor_db[group]


@dataclass(frozen=True)
class OutputParity:
    """Agreement of one graph output over all evaluation inputs."""

    name: str
    max_abs_err: float
    snr_db: float
    within_fp32_tol: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "max_abs_err": _finite(self.max_abs_err),
            "snr_db": _finite(self.snr_db),
            "within_fp32_tol": self.within_fp32_tol,
        }


def compare_outputs(
    names: list[str], reference: list[list[np.ndarray]], got: list[list[np.ndarray]], bounds: ParityBounds
) -> list[OutputParity]:
    """Compare per-output lists over inputs: ``reference[i][j]`` is output j on input i."""
    result = []
    for j, name in enumerate(names):
        signal = noise = 0.0
        max_err = 0.0
        within = True
        for ref_i, got_i in zip(reference, got):
            r = np.asarray(ref_i[j], dtype=np.float64)
            g = np.asarray(got_i[j], dtype=np.float64)
            if r.shape != g.shape:
                return [OutputParity(name, math.inf, -math.inf, False)]
            odd = ~(np.isfinite(r) & np.isfinite(g))
            if odd.any():
                if not np.all(r[odd] == g[odd]):  # a NaN, or an inf the other side lacks
                    signal, noise, max_err, within = 0.0, math.inf, math.inf, False
                    break
                r, g = np.where(odd, 0.0, r), np.where(odd, 0.0, g)  # the same inf on both sides
            err = np.abs(r - g)
            if err.size:
                max_err = max(max_err, float(err.max()))
            within = within and bool(np.all(err <= bounds.fp32_atol + bounds.fp32_rtol * np.abs(r)))
            signal += float(np.sum(r * r))
            noise += float(np.sum(err * err))
        result.append(OutputParity(name, max_err, snr_db(signal, noise), within))
    return result


def judge(
    group: str, precision: str, outputs: list[OutputParity], bounds: ParityBounds, scored: bool = False,
    floats: str = "fp32",
) -> tuple[bool, str]:
    """Whether a graph of ``group`` stored at ``precision`` passes; the reason when it does not.
    ``scored``: ``outputs`` compare an integer graph with the scored torch model; ``floats``:
    the float type of that graph's float parts."""
    if precision == "fp32":
        bad = [o for o in outputs if not o.within_fp32_tol]
        if bad:
            worst = max(bad, key=lambda o: o.max_abs_err)
            if not math.isfinite(worst.max_abs_err):
                return False, f"fp32 output {worst.name} holds NaN or inf values the torch model does not"
            return False, (
                f"fp32 output {worst.name} differs by {worst.max_abs_err:.3g} "
                f"(allowed {bounds.fp32_atol:g} + {bounds.fp32_rtol:g}*|ref|)"
            )
        return True, ""
    floor = bounds.floor(group, precision, scored, floats)
    worst = min(outputs, key=lambda o: -math.inf if math.isnan(o.snr_db) else o.snr_db)
    if not worst.snr_db >= floor:  # NaN fails too
        if not math.isfinite(worst.max_abs_err):
            return False, f"{precision} output {worst.name} holds NaN or inf values the torch model does not"
        against = " against the scored model" if scored else ""
        return False, f"{precision} output {worst.name} SNR {worst.snr_db:.1f} dB{against} < floor {floor:g} dB"
    return True, ""


def snr_db(signal_power: float, noise_power: float) -> float:
    """``10 log10(signal / noise)``; +inf for an exact match, -inf for a zero signal with noise
    and for a noise power that is NaN or inf (a NaN or inf output)."""
    if math.isnan(noise_power) or math.isnan(signal_power) or math.isinf(noise_power):
        return -math.inf
    if noise_power == 0.0:
        return math.inf
    ratio = signal_power / noise_power
    if ratio == 0.0:  # a zero signal, or one that underflows against the noise
        return -math.inf
    return 10.0 * math.log10(ratio)


def top1_agreement(reference_logits: np.ndarray, got_logits: np.ndarray) -> float:
    """Fraction of rows ``[N, V]`` whose argmax agrees."""
    if reference_logits.size == 0:
        return 1.0
    return float(np.mean(np.argmax(reference_logits, -1) == np.argmax(got_logits, -1)))


def _finite(x: float) -> float | None:
    """JSON has no infinities: an exact match is reported as None next to a passed check."""
    return x if math.isfinite(x) else None


__all__ = [
    "E2E_FLOOR_DB",
    "FP16_FLOATS_MARGIN_DB",
    "FP16_MIN_SNR_DB",
    "GROUP_FLOOR_DB",
    "OutputParity",
    "ParityBounds",
    "SCORED_FLOOR_DB",
    "compare_outputs",
    "judge",
    "snr_db",
    "top1_agreement",
]
