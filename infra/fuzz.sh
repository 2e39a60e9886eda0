#!/usr/bin/env bash
# Fuzzes the parsers that take untrusted bytes (cargo-fuzz / libFuzzer, nightly toolchain):
#   decode_frame   one frame through the agent's decoder (every supported link type)
#   read_capture   a pcap/pcapng file through libpcap and the agent's record step
#   packet_batch   a MessagePack batch as the ingestor and windower decode and validate it
#   frame_batch    a MessagePack batch of kept frames as pcap exports decode and validate it
#   window_record  a MessagePack window as the predictor decodes, validates and classifies it
#   model_file     a model file as the predictor loads it, then used to classify
#
# Usage: bash infra/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default: 60 s, every target)
# Extra libFuzzer options go in FUZZ_ARGS, e.g. FUZZ_ARGS="-runs=10000000" for a fixed count.
# Seeds are regenerated on every run from the shared captures (NTA_PCAPS_DIR, else
# ../shared/pcaps next to the checkout, else testdata/pcaps); what the fuzzer finds on top of
# them is kept in fuzz/corpus/<target>. A crash or hang fails the script; the input is in
# fuzz/artifacts/<target>/ and `cargo +nightly fuzz run -a <target> <that file>` replays it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT/fuzz"

SECS="${1:-60}"
shift || true
ALL=(decode_frame read_capture packet_batch frame_batch window_record model_file)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")
for t in "${TARGETS[@]}"; do
  [[ " ${ALL[*]} " == *" $t "* ]] || { echo "fuzz: unknown target $t (known: ${ALL[*]})" >&2; exit 2; }
done

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: the nightly Rust toolchain is missing (cargo-fuzz needs nightly's sanitizer flags):" >&2
  echo "      rustup toolchain install nightly" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz
fi

# -a: debug assertions, so arithmetic overflow and the standard library's precondition checks
# are crashes too (release builds would silently wrap or read out of bounds).
cargo +nightly fuzz build -a
BIN="target/x86_64-unknown-linux-gnu/release"

PCAPS="${NTA_PCAPS_DIR:-}"
if [ -z "$PCAPS" ]; then
  for cand in "$ROOT/../shared/pcaps" "$ROOT/testdata/pcaps"; do
    if [ -d "$cand" ]; then PCAPS="$cand"; break; fi
  done
fi
[ -d "$PCAPS" ] || { echo "fuzz: no capture directory for the seeds (set NTA_PCAPS_DIR)" >&2; exit 1; }
rm -rf seeds
"$BIN/seeds" seeds "$PCAPS" "$PCAPS/benign-corpus"

failed=()
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "fuzz: $t for ${SECS}s" >&2
  # -timeout: an input taking 10 s is a hang (a loop in a model's trees, say), reported as a crash.
  set +e
  # shellcheck disable=SC2086
  cargo +nightly fuzz run -a "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$SECS" -timeout=10 -print_final_stats=1 ${FUZZ_ARGS:-} 2>&1 | tee "artifacts/$t/last-run.log" |
    grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|==[0-9]+== ERROR|SUMMARY|thread .* panicked)'
  status=${PIPESTATUS[0]}
  set -e
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $t FAILED: input in fuzz/artifacts/$t/, log in fuzz/artifacts/$t/last-run.log" >&2
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: no crash in ${TARGETS[*]}" >&2
