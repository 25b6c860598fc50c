# Shared by the image build scripts (sourced, not run). The caller sets `me`, IMAGE, `hash` (of its
# inputs) and `cache` (a directory outside the repository), then calls, in order:
#   ensure_docker         a Docker engine answers, or the script stops with the reason
#   exit_if_up_to_date    an image with this input hash exists: say so, stop
#   lock_build            one build at a time; sets `steplog`; a second caller finds it up to date
#   run WHAT CMD...       a quiet build step; on failure its output and the reason, then stop
# The input hash is kept in the image's label `streams.source-hash`.

LABEL=streams.source-hash
_build_lib_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { echo "$me: $*" >&2; exit 1; }

ensure_docker() {
  docker info >/dev/null 2>&1 && return 0
  bash "$_build_lib_dir/ensure-engine.sh" || die "no Docker engine (see above)"
  docker info >/dev/null 2>&1 || die "no Docker engine: docker info still fails"
}

image_hash() {
  docker image inspect "$IMAGE" --format "{{ index .Config.Labels \"$LABEL\" }}" 2>/dev/null || true
}

exit_if_up_to_date() {
  if [ "$(image_hash)" = "$hash" ]; then
    echo "$IMAGE is up to date"
    exit 0
  fi
}

lock_build() {
  mkdir -p "$cache"
  exec 9>"$cache/.lock"
  flock 9
  exit_if_up_to_date
  steplog="$cache/last-build.log"
  : >"$steplog"
}

run() {
  local what="$1"; shift
  if ! "$@" >>"$steplog" 2>&1 </dev/null; then
    tail -n 40 "$steplog" >&2
    die "$what failed (full log: $steplog)"
  fi
}
