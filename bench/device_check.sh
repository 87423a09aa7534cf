#!/usr/bin/env bash
# GPU validation of otm's estimator in one go, on a machine with one NVIDIA GPU.
#
#     OUT=results/ bash bench/device_check.sh      # from the repository root
#
# 1. installs otm's pure-Python dependencies from wheels in .whl/ (when that
#    folder holds any) into a scratch folder put on PYTHONPATH, and checks that
#    otm imports;
# 2. prints nvidia-smi;
# 3. bench/table4.py: each request alone on Llama-3.1-8B shapes, measured vs
#    estimated (about 2 minutes on an H200);
# 4. bench/nvml_validate.py: the synthetic roofline check at four batch sizes
#    (about 2 minutes).
# Each step is guarded: one failing or timing out does not stop the next.
# Logs and JSON go to $OUT (a temporary folder when unset) as they are
# written, so they survive a timeout; the last lines printed are a summary.
# docs/measurement.md says how to fetch the wheels and what is measured.
#
# Overrides (for a rehearsal on a CPU machine, say): PYTHON, WHEELS (the wheel
# folder, default .whl), TABLE4_ARGS, NVML_VALIDATE_ARGS, TABLE4_TIMEOUT and
# NVML_VALIDATE_TIMEOUT (seconds).

set -u
set -o pipefail

PY=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d)}
export OUT
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
TABLE4_ARGS=${TABLE4_ARGS:-}
NVML_VALIDATE_ARGS=${NVML_VALIDATE_ARGS:---batches 1 16 64 256 --seconds 8 --budget 90}
failed=()

step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

step "setup" | tee "$OUT/setup.log"
shopt -s nullglob
wheels=("${WHEELS:-.whl}"/*.whl)
if ((${#wheels[@]})); then
    site=$(mktemp -d)
    if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "${wheels[@]}" 2>&1 | tee -a "$OUT/setup.log"; then
        export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    else
        failed+=("wheel install")
    fi
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" - 2>&1 <<'EOF' | tee -a "$OUT/setup.log" || failed+=("otm import")
import sys
import otm, otm.estimate, otm.measure, pydantic, numpy
try:
    import torch
    t = f"torch {torch.__version__} (CUDA {torch.version.cuda}, GPU: {torch.cuda.is_available()})"
except ImportError:
    t = "no torch"
print(f"python {sys.version.split()[0]}; otm {otm.__version__}; pydantic {pydantic.VERSION}; numpy {numpy.__version__}; {t}")
EOF
if command -v nvidia-smi >/dev/null; then
    nvidia-smi 2>&1 | tee -a "$OUT/setup.log" || failed+=("nvidia-smi")
else
    echo "nvidia-smi: not found" | tee -a "$OUT/setup.log"
fi

step "bench/table4.py $TABLE4_ARGS"
# stderr (progress) to the log and the screen; the JSON goes to $OUT/table4.json
# shellcheck disable=SC2086  # the argument strings split into words on purpose
timeout -k 10 "${TABLE4_TIMEOUT:-300}" "$PY" bench/table4.py $TABLE4_ARGS 2>&1 >/dev/null \
    | tee "$OUT/table4.log" || failed+=("table4 (exit $?)")

step "bench/nvml_validate.py $NVML_VALIDATE_ARGS"
# shellcheck disable=SC2086
timeout -k 10 "${NVML_VALIDATE_TIMEOUT:-170}" "$PY" bench/nvml_validate.py $NVML_VALIDATE_ARGS \
    2>"$OUT/nvml_validate.log" >"$OUT/nvml_validate.json" || failed+=("nvml_validate (exit $?)")
tail -n 8 "$OUT/nvml_validate.log"

step "summary" | tee "$OUT/summary.txt"
{
    "$PY" bench/table4.py --show "$OUT/table4.json"
    "$PY" - "$OUT/nvml_validate.json" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
try:
    r = json.loads(text)
except ValueError:
    print("nvml_validate:", text.strip()[:300] or "no output")
    raise SystemExit
print(f"nvml_validate: idle {r.get('idle_power_w')} W; "
      f"geomean measured/estimated (batch inferred) {r.get('geomean_ratio')}")
for b in r.get("runs", []):
    i, k = b.get("inferred_batch") or {}, b.get("known_batch") or {}
    print(f"  batch {b['batch']}: step {b.get('step_ms')} ms, "
          f"measured {(b.get('measured') or {}).get('energy_wh')} Wh, measured/estimated: "
          f"inferred batch {i.get('ratio')}, known batch {k.get('ratio')} {b.get('error', '')}")
EOF
    if ((${#failed[@]})); then echo "FAILED: ${failed[*]}"; else echo "all steps ran"; fi
    echo "files in $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
} 2>&1 | tee -a "$OUT/summary.txt"
((${#failed[@]} == 0))
