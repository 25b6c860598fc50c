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

# import_image ROOTFS_TAR DOCKER_IMPORT_OPTIONS...: tag the root filesystem as IMAGE, remove the
# image it replaces, and print the one line the build scripts report. Uses `start` (SECONDS).
import_image() {
  local tar="$1"; shift
  local old_id new_id size
  old_id="$(docker image inspect "$IMAGE" --format '{{.Id}}' 2>/dev/null || true)"
  run "docker import" docker import "$@" "$tar" "$IMAGE"
  [ "$(image_hash)" = "$hash" ] || die "docker import ran but $IMAGE does not carry the expected label"
  new_id="$(docker image inspect "$IMAGE" --format '{{.Id}}')"
  if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    docker image rm "$old_id" >/dev/null 2>&1 || true   # the previous build, now untagged
  fi
  size="$(docker image inspect "$IMAGE" --format '{{.Size}}')"
  echo "built image $IMAGE ($((size / 1000000)) MB, hash $hash) in $((SECONDS - start))s"
}
