#!/usr/bin/env bash
# Builds the ably-standin binary (static, standard library only, no module
# downloads) and the container image streams-ably-standin:1 (FROM scratch).
#
#   bash infra/ably-standin/build-image.sh                # binary + image
#   bash infra/ably-standin/build-image.sh --binary-only  # binary only, no Docker needed
#
# The binary and the build context live outside the repo, in
# ${XDG_CACHE_HOME:-$HOME/.cache}/streams/ably-standin/. The image carries a
# label with a hash of the sources (and of this script); when it matches, the
# script prints one line, "up to date", and does nothing else.
# Needs: go >= 1.22; for the image, a running Docker engine
# (infra/docker/ensure-engine.sh is tried when `docker info` fails).
set -euo pipefail

IMAGE=streams-ably-standin:1
LABEL=streams.source-hash

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/streams/ably-standin"

binary_only=0
case "${1:-}" in
  "") ;;
  --binary-only) binary_only=1 ;;
  -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "build-image.sh: unknown argument $1 (use --binary-only or nothing)" >&2; exit 2 ;;
esac

# Hash of everything that goes into the image: go.mod, the non-test Go files, this script.
hash="$(cd "$here" && LC_ALL=C ls go.mod build-image.sh *.go | grep -v '_test\.go$' \
  | xargs sha256sum | sha256sum | cut -c1-32)"

docker_ok() { timeout 20 docker info >/dev/null 2>&1; }

if [ "$binary_only" = 0 ] && ! docker_ok; then
  if [ -f "$repo/infra/docker/ensure-engine.sh" ]; then
    bash "$repo/infra/docker/ensure-engine.sh" >&2 || true
  fi
  if ! docker_ok; then
    echo "build-image.sh: no Docker engine (docker info fails); building the binary only" >&2
    binary_only=2
  fi
fi

if [ "$binary_only" = 0 ] &&
   [ "$(docker image inspect "$IMAGE" --format "{{ index .Config.Labels \"$LABEL\" }}" 2>/dev/null || true)" = "$hash" ]; then
  echo "up to date"
  exit 0
fi
if [ "$binary_only" = 1 ] && [ -x "$cache/ably-standin" ] && [ "$(cat "$cache/ably-standin.hash" 2>/dev/null)" = "$hash" ]; then
  echo "up to date"
  exit 0
fi

command -v go >/dev/null || { echo "build-image.sh: go (>= 1.22) is not on PATH" >&2; exit 1; }
mkdir -p "$cache"
start=$(date +%s)
# Standard library only: GOPROXY=off proves nothing is downloaded.
(cd "$here" && CGO_ENABLED=0 GOOS=linux GOPROXY=off GOFLAGS=-buildvcs=false \
  go build -trimpath -ldflags='-s -w' -o "$cache/ably-standin.tmp" .)
mv -f "$cache/ably-standin.tmp" "$cache/ably-standin"
echo "$hash" > "$cache/ably-standin.hash"
echo "built $cache/ably-standin in $(( $(date +%s) - start ))s"

if [ "$binary_only" != 0 ]; then
  echo "run it: ABLY_STANDIN_API_KEY=appId.keyId:secret $cache/ably-standin --listen 127.0.0.1:8080"
  [ "$binary_only" = 2 ] && exit 1
  exit 0
fi

ctx="$cache/context"
rm -rf "$ctx"
mkdir -p "$ctx/tmp"
chmod 1777 "$ctx/tmp"
cp "$cache/ably-standin" "$ctx/ably-standin"
cat > "$ctx/Dockerfile" <<EOF
FROM scratch
COPY ably-standin /usr/local/bin/ably-standin
COPY tmp /tmp
ENV PATH=/usr/local/bin
LABEL $LABEL="$hash" \\
      org.opencontainers.image.title="ably-standin" \\
      org.opencontainers.image.description="In-memory stand-in for Ably's REST API for tests; not Ably. Needs ABLY_STANDIN_API_KEY=appId.keyId:secret."
EXPOSE 8080
USER 65534:65534
ENTRYPOINT ["/usr/local/bin/ably-standin", "--listen", "0.0.0.0:8080"]
EOF
old_id="$(docker image inspect "$IMAGE" --format '{{.Id}}' 2>/dev/null || true)"
# Quiet unless it fails (the legacy builder prints a deprecation notice on stderr).
if ! out="$(docker build --quiet --tag "$IMAGE" "$ctx" 2>&1)"; then
  echo "$out" >&2
  exit 1
fi
new_id="$(docker image inspect "$IMAGE" --format '{{.Id}}')"
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
  docker rmi "$old_id" >/dev/null 2>&1 || true  # the superseded build of this image, if unused
fi
echo "built image $IMAGE ($hash) in $(( $(date +%s) - start ))s"
echo "run it: docker run --rm -p 127.0.0.1:8080:8080 -e ABLY_STANDIN_API_KEY=appId.keyId:secret $IMAGE"
