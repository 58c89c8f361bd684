#!/usr/bin/env bash
# Builds the cargo-fuzz targets and runs each for a bounded time; exits non-zero on a crash.
#   FUZZ_SECONDS  seconds per target (default 60)
#   FUZZ_TARGETS  space-separated targets (default: codec_chunks codec_roundtrip)
# Inputs kept in regressions/<target>/ are replayed first. A crash leaves its input in
# artifacts/<target>/; copy it to regressions/<target>/ to keep it.
# Works on stable Rust: RUSTC_BOOTSTRAP=1 unlocks the -Z flags cargo-fuzz passes.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_TARGETS=${FUZZ_TARGETS:-codec_chunks codec_roundtrip}
export RUSTC_BOOTSTRAP=1
START=$SECONDS

step() { printf '\n=== fuzz: %s (at %ds)\n' "$*" "$((SECONDS - START))"; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    step "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

step "building $FUZZ_TARGETS"
# Debug assertions on, so integer overflow in the codec is a crash rather than a wrap. The
# binaries are then run directly, so what was built once is what gets replayed and fuzzed.
for target in $FUZZ_TARGETS; do
    cargo fuzz build --debug-assertions "$target"
done
bin_dir="target/$(rustc -vV | sed -n 's/^host: //p')/release"

max_len() {
    case $1 in
        codec_chunks) echo 32768 ;;  # room for several frames and bodies spanning frame_max
        *) echo 8192 ;;
    esac
}

status=0
for target in $FUZZ_TARGETS; do
    shopt -s nullglob
    kept=(regressions/"$target"/*)
    shopt -u nullglob
    if ((${#kept[@]})); then
        mkdir -p "artifacts/$target"
        step "$target: replaying ${#kept[@]} kept input(s)"
        if ! "$bin_dir/$target" -rss_limit_mb=2048 -artifact_prefix="artifacts/$target/" "${kept[@]}"; then
            echo "fuzz: $target fails on a kept regression input" >&2
            status=1
            continue
        fi
    fi
    step "$target: fuzzing for ${FUZZ_SECONDS}s"
    mkdir -p "work/corpus/$target" "corpus/$target" "artifacts/$target"
    # work/ (ignored) takes what libFuzzer adds, corpus/ holds the kept seeds.
    if ! "$bin_dir/$target" -max_total_time="$FUZZ_SECONDS" -max_len="$(max_len "$target")" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="artifacts/$target/" \
        "work/corpus/$target" "corpus/$target"; then
        echo "fuzz: $target crashed; reproducer in fuzz/artifacts/$target/" >&2
        ls -l "artifacts/$target/" >&2 || true
        status=1
    fi
done
step "done (status $status)"
exit "$status"
