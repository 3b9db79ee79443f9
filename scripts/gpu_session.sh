#!/usr/bin/env bash
# One lent-GPU call for the demo voice: the SoVITS and the GPT train side by side on the one GPU.
#
#   here, once:   python scripts/gpu_sovits.py pack --items 400 --out .gpu_pack
#                 python scripts/gpu_gpt.py pack --out .gpu_gpt_pack
#                 (both untracked at the repository root, so they travel with the working tree:
#                 about 32 + 24 + 6 MB of the 64 MiB allowed)
#   on the GPU:   bash scripts/gpu_session.sh MINUTES [DEVICE]
#
# SOVITS_ARGS and GPT_ARGS add options to either trainer (a dry run here on the CPU:
# SOVITS_ARGS="--batch 2 --steps 2" GPT_ARGS="--batch 2 --steps 2" OUT=/tmp/o bash scripts/gpu_session.sh 1 cpu).
#
# The training states stay on the device machine in runs/ (ignored by git, kept while the machine
# is warm), so a second call on a warm machine resumes them; they are larger than the 16 MiB a
# file may have to come back. What comes back through $OUT: the best SoVITS and GPT in the shipped
# formats and both logs. Then, here: copy them into a copy of autocompress/assets/demo and run
# build_demo_voice.py --stage evaluate on it (VOICE.md, "To continue").
set -euo pipefail
minutes=${1:?usage: gpu_session.sh MINUTES [DEVICE]}
device=${2:-cuda}
out=${OUT:?set OUT to the folder whose files come back}
export PYTHONUNBUFFERED=1
scripts=$(cd "$(dirname "$0")" && pwd)
cd "${GPU_SESSION_DIR:-$scripts/..}"  # where the packs are and runs/ goes: the repository root
for pack in .gpu_pack .gpu_gpt_pack; do
    [[ -d $pack ]] || { echo "error: no $pack here; hint: pack it before the call (see the top of $0)" >&2; exit 2; }
done
mkdir -p runs/sovits runs/gpt
sovits_from=(--disc-channels 1,32,128,512,1024,1024)
[[ -f runs/sovits/gpu-state.pt ]] && sovits_from=(--resume runs/sovits/gpu-state.pt)
gpt_from=()
[[ -f runs/gpt/gpu-state.pt ]] && gpt_from=(--resume runs/gpt/gpu-state.pt)
# a resumed run writes under a new name, so that this call's log and best model are its own
name=gpu-$(date +%H%M%S)
python "$scripts/gpu_sovits.py" train --pack .gpu_pack --out runs/sovits --name "$name" --device "$device" \
    --minutes "$minutes" "${sovits_from[@]}" ${SOVITS_ARGS:-} > "$out/sovits-$name.txt" 2>&1 &
sovits_pid=$!
python "$scripts/gpu_gpt.py" train --pack .gpu_gpt_pack --out runs/gpt --name "$name" --device "$device" \
    --minutes "$minutes" "${gpt_from[@]}" ${GPT_ARGS:-} > "$out/gpt-$name.txt" 2>&1 &
gpt_pid=$!
status=0
wait "$sovits_pid" || status=$?
wait "$gpt_pid" || status=$?
# the next call resumes the states this one wrote
cp "runs/sovits/$name-state.pt" runs/sovits/gpu-state.pt 2>/dev/null || true
cp "runs/gpt/$name-state.pt" runs/gpt/gpu-state.pt 2>/dev/null || true
for model in sovits gpt; do  # at most 8 files come back: these 4 and the 2 outputs above
    for f in "runs/$model/$name"-best.* "runs/$model/$name-log.jsonl"; do
        [[ -f $f && $f != *.pt ]] && cp "$f" "$out/$model-${f##*/}"
    done
done
tail -n 2 "$out/sovits-$name.txt" "$out/gpt-$name.txt"
exit "$status"
