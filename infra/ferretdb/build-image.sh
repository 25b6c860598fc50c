#!/usr/bin/env bash
# Builds the container image streams-ferretdb:1.24.2 (FROM scratch, no registry): FerretDB v1.24.2,
# a MongoDB wire-protocol server on SQLite (pure Go, static binary), for the integration tests.
#
#   bash infra/ferretdb/build-image.sh          # from any directory
#
# The binary is built from the Go module proxy with CGO_ENABLED=0 and kept in
# ${XDG_CACHE_HOME:-$HOME/.cache}/streams/ferretdb/ (with Go's own module and build caches, a
# rebuild is quick). It is built from a copy of the module's source (`go mod download`) with
# build/version/version.txt added, not with `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`:
# that binary panics at start ("Invalid build/version/version.txt file content. Please run
# `bin/task gen-version`"), because the file is generated from git and is not in the module zip.
#
# Running it:
#   docker run -d -p P:27017 streams-ferretdb:1.24.2
#   It listens on 0.0.0.0:27017 in the container, keeps its SQLite files in /data (image layer;
#   mount a volume or --tmpfs /data if wanted; it runs as root so any mount is writable).
#   Extra arguments are passed on to ferretdb (e.g. --log-level=debug); env FERRETDB_* works too.
#   Ready: a `ping` command succeeds (the TCP port is open at once through docker's proxy);
#   the log line "Listening on TCP" appears first.
#
# The image carries a label with a hash of this script; when it matches, the script prints
# "... up to date" and does nothing else.
# Needs: a Docker engine (infra/docker/ensure-engine.sh is tried), Go >= 1.24 and the Go module proxy
# for the first build.
set -euo pipefail

me="ferretdb/build-image.sh"

FERRETDB_VERSION=1.24.2
IMAGE="streams-ferretdb:$FERRETDB_VERSION"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../docker/build-lib.sh
source "$here/../docker/build-lib.sh"
repo="$(cd "$here/../.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/streams/ferretdb"
hash="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-32)"

ensure_docker
exit_if_up_to_date
lock_build
start=$SECONDS

# --- The binary (cached by FerretDB version + Go version) --------------------------------------
GO="$(command -v go || true)"
[ -n "$GO" ] || { [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go; } || die "go is not on PATH (nor /usr/local/go/bin/go)"
gover="$(GOTOOLCHAIN=local "$GO" env GOVERSION)"
case "$gover" in
  go1.2[4-9]*|go1.[3-9][0-9]*) ;;
  *) die "FerretDB v$FERRETDB_VERSION needs Go >= 1.24; $GO is $gover" ;;
esac
bin="$cache/ferretdb-v$FERRETDB_VERSION"
stamp="$bin.stamp"
want_stamp="v$FERRETDB_VERSION $gover CGO_ENABLED=0"
if [ ! -x "$bin" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want_stamp" ]; then
  # The module's own source and go.sum (exactly upstream's pinned dependencies), plus the
  # build/version/version.txt that upstream generates from git (see the header).
  export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOOS=linux
  run "go mod download github.com/FerretDB/FerretDB@v$FERRETDB_VERSION" \
    "$GO" mod download -json "github.com/FerretDB/FerretDB@v$FERRETDB_VERSION"
  moddir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' "$steplog" | tail -n1)"
  if [ -z "$moddir" ] || [ ! -f "$moddir/go.mod" ]; then
    die "go mod download gave no module directory (log: $steplog)"
  fi
  src="$cache/src-v$FERRETDB_VERSION"
  rm -rf "$src" "$cache/wrapper"
  cp -R "$moddir" "$src"
  chmod -R u+w "$src"
  printf 'v%s\n' "$FERRETDB_VERSION" >"$src/build/version/version.txt"
  printf 'streams\n' >"$src/build/version/package.txt"
  run "go build ferretdb" \
    bash -c "cd '$src' && '$GO' build -trimpath -ldflags='-s -w' -o '$bin.tmp' ./cmd/ferretdb"
  run "ferretdb --version (smoke test)" "$bin.tmp" --version
  if LC_ALL=C ldd "$bin.tmp" 2>&1 | grep -q '=>'; then
    die "$bin.tmp is dynamically linked (CGO_ENABLED=0 expected)"
  fi
  mv -f "$bin.tmp" "$bin"
  echo "$want_stamp" >"$stamp"
  rm -rf "$src"
fi

# --- Root filesystem and image -------------------------------------------------------------------
work="$cache/build"
rm -rf "$work"
root="$work/rootfs"
mkdir -p "$root"/{etc,tmp,data,usr/local/bin}
chmod 1777 "$root/tmp"
cp "$bin" "$root/usr/local/bin/ferretdb"
cat >"$root/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
EOF
cat >"$root/etc/group" <<EOF
root:x:0:
nogroup:x:65534:
EOF
tar -C "$root" -cf "$work/rootfs.tar" --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 .

import_image "$work/rootfs.tar" \
  --change "ENV PATH=/usr/local/bin" \
  --change "WORKDIR /data" \
  --change "EXPOSE 27017" \
  --change "LABEL $LABEL=$hash org.opencontainers.image.title=streams-ferretdb com.ferretdb.version=v$FERRETDB_VERSION" \
  --change 'ENTRYPOINT ["/usr/local/bin/ferretdb", "--handler=sqlite", "--sqlite-url=file:/data/", "--listen-addr=0.0.0.0:27017", "--debug-addr=-", "--state-dir=-", "--telemetry=disable"]' \
  --message "streams-ferretdb $FERRETDB_VERSION (infra/ferretdb/build-image.sh)"
rm -rf "$work"
