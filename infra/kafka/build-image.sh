#!/usr/bin/env bash
# Builds the container image streams-kafka:<kafka.version from pom.xml> (FROM scratch, no registry):
# a single-node Apache Kafka broker (KRaft, combined broker+controller) on a jlink'd Java 17.
#
#   bash infra/kafka/build-image.sh          # from any directory
#
# Image contents: /opt/java (jlink runtime from the local JDK 17), /opt/kafka/libs (the jars
# `mvn dependency:copy-dependencies` puts in infra/kafka/libs; fetched here if missing), the shared
# libraries java and the jars' native code need (found with ldd), /etc/passwd, /tmp (1777),
# /opt/kafka/server.properties.template (a copy of infra/kafka/server.properties.template), KRaft
# storage already formatted in /var/lib/kafka/data, and /usr/local/bin/kafka-entrypoint: a static
# Go program (infra/kafka/entrypoint/main.go) that fills the template from the environment, formats the storage if
# it is not formatted (e.g. an empty volume on /var/lib/kafka/data), then execs the JVM. It starts
# as root, chowns /var/lib/kafka to uid 1000 if needed and runs the JVM as that user (kafka).
#
# Running it (the advertised address must be the one clients dial, so map the same port):
#   docker run -d -p P:P -e KAFKA_PORT=P streams-kafka:4.4.0
#   env KAFKA_PORT (9092), KAFKA_ADVERTISED_HOST (127.0.0.1), KAFKA_CONTROLLER_PORT (9093, or 9094
#   if KAFKA_PORT is 9093), KAFKA_HEAP_OPTS ("-Xms256m -Xmx512m"), KAFKA_LOG_LEVEL (info),
#   KAFKA_JVM_OPTS (extra JVM flags), KAFKA_CLUSTER_ID (only used when formatting an empty dir);
#   arguments are passed on to kafka.Kafka, e.g. `--override num.partitions=3`.
#   Ready: the log line "Kafka Server started" (stderr), then a metadata call succeeds. (A TCP
#   connect to the published port proves nothing: docker-proxy accepts it before the broker listens.)
#   Start to ready: about 4 s on 2 cores. `docker stop` (SIGTERM) shuts it down in about 1 s.
#
# The image carries a label with a hash of its inputs (this script, the template, pom.xml, the
# JDK's release file); when it matches, the script prints "... up to date" and does nothing else.
# Intermediate files live in ${XDG_CACHE_HOME:-$HOME/.cache}/streams/kafka/.
# Needs: a Docker engine (infra/docker/ensure-engine.sh is tried), a JDK 17 with jmods (jlink),
# Maven (only if infra/kafka/libs is missing), Go >= 1.21, ldd, tar.
set -euo pipefail

me="kafka/build-image.sh"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../docker/build-lib.sh
source "$here/../docker/build-lib.sh"
repo="$(cd "$here/../.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/streams/kafka"
# Modules the broker needs (java.desktop: java.beans for commons-beanutils; jdk.zipfs, jdk.naming.dns...).
MODULES=java.base,java.management,java.naming,java.security.jgss,java.security.sasl,java.sql,jdk.management,jdk.unsupported,java.xml,jdk.crypto.ec,java.logging,java.desktop,jdk.naming.dns,java.scripting,jdk.zipfs
JLINK_OPTS=(--strip-debug --no-header-files --no-man-pages --compress=0 --generate-cds-archive)
KAFKA_UID=1000

[ -f "$here/pom.xml" ] || die "missing $here/pom.xml"
[ -f "$here/server.properties.template" ] || die "missing $here/server.properties.template"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml" | head -n1)"
[ -n "$version" ] || die "no <kafka.version> property in $here/pom.xml"
IMAGE="streams-kafka:$version"

# --- JDK 17 with jmods ------------------------------------------------------------------------
find_jdk() {
  local c
  for c in "${STREAMS_JDK:-}" "${JAVA_HOME:-}" /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-*; do
    [ -n "$c" ] && [ -x "$c/bin/jlink" ] && [ -f "$c/jmods/java.base.jmod" ] &&
      grep -q '^JAVA_VERSION="17' "$c/release" 2>/dev/null && { echo "$c"; return 0; }
  done
  return 1
}
jdk="$(find_jdk)" || die "no JDK 17 with jlink and jmods found (tried \$STREAMS_JDK, \$JAVA_HOME, /usr/lib/jvm/java-17-openjdk-*); on Debian: apt-get install openjdk-17-jdk-headless"

# --- Input hash -------------------------------------------------------------------------------
hash="$( { cat "${BASH_SOURCE[0]}" "$here/entrypoint/main.go" "$here/server.properties.template" "$here/pom.xml" "$jdk/release"; } \
  | sha256sum | cut -c1-32)"

# --- Docker engine ------------------------------------------------------------------------------
ensure_docker
exit_if_up_to_date
lock_build
start=$SECONDS

# --- Broker jars --------------------------------------------------------------------------------
libs="$here/libs"
if [ ! -f "$libs/kafka_2.13-$version.jar" ]; then
  if compgen -G "$libs/kafka_2.13-*.jar" >/dev/null; then
    rm -rf "$libs"   # jars of another Kafka version: stale
  fi
  command -v mvn >/dev/null || die "infra/kafka/libs is missing and mvn is not on PATH (apt-get install maven)"
  run "mvn dependency:copy-dependencies" \
    bash -c "cd '$here' && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=libs"
  [ -f "$libs/kafka_2.13-$version.jar" ] || die "mvn ran but $libs/kafka_2.13-$version.jar is missing"
fi
compgen -G "$libs/slf4j-simple-*.jar" >/dev/null || compgen -G "$libs/log4j-slf4j*-impl-*.jar" >/dev/null ||
  echo "$me: warning: no SLF4J provider in $libs; the broker will log nothing" >&2

# --- Java runtime (jlink), cached by JDK + modules + options -----------------------------------
jre_key="$( { cat "$jdk/release"; echo "$MODULES ${JLINK_OPTS[*]}"; } | sha256sum | cut -c1-16)"
jre="$cache/jre-$jre_key"
if [ ! -x "$jre/bin/java" ]; then
  rm -rf "$cache"/jre-*
  run "jlink" "$jdk/bin/jlink" --add-modules "$MODULES" "${JLINK_OPTS[@]}" --output "$jre.tmp"
  mv "$jre.tmp" "$jre"
fi

# --- Entrypoint (static Go, standard library only) ---------------------------------------------
GO="$(command -v go || true)"
[ -n "$GO" ] || { [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go; } || die "go is not on PATH (nor /usr/local/go/bin/go)"
src="$here/entrypoint"  # the static Go entrypoint (standard library only)
entry="$cache/kafka-entrypoint"
run "go build (entrypoint)" bash -c "cd '$src' && CGO_ENABLED=0 GOOS=linux GOPROXY=off GOFLAGS=-buildvcs=false \
  '$GO' build -trimpath -ldflags='-s -w' -o '$entry.tmp' . && mv -f '$entry.tmp' '$entry'"

# --- Root filesystem ---------------------------------------------------------------------------
work="$cache/build"
rm -rf "$work"
root="$work/rootfs"
mkdir -p "$root"/{etc,tmp,opt/kafka/libs,usr/local/bin,var/lib/kafka/data}
chmod 1777 "$root/tmp"
cp -a "$jre" "$root/opt/java"
rm -f "$root/opt/java/lib/server/classes_nocoops.jsa"   # CDS for heaps > 32 GiB only
# Desktop-only native code (the JVM runs headless): drops the X11, ALSA and GLib dependencies.
rm -f "$root/opt/java/lib/"{libawt_xawt.so,libjawt.so,libsplashscreen.so,libjsound.so}
cp "$libs"/*.jar "$root/opt/kafka/libs/"
cp "$here/server.properties.template" "$root/opt/kafka/server.properties.template"
cp "$entry" "$root/usr/local/bin/kafka-entrypoint"
cat >"$root/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
kafka:x:$KAFKA_UID:$KAFKA_UID:kafka:/var/lib/kafka:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
EOF
cat >"$root/etc/group" <<EOF
root:x:0:
kafka:x:$KAFKA_UID:
nogroup:x:65534:
EOF
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"

# Shared libraries: whatever ldd lists for java, the JVM, the runtime's libraries and the native
# code the jars unpack at run time (zstd, snappy, lz4), plus libgcc_s (glibc dlopens it for thread
# cancellation). Copied with their paths, symlinks resolved.
natives="$work/natives"
mkdir -p "$natives"
for jar in "$libs"/*.jar; do
  unzip -qq -o "$jar" '*linux*/amd64/*.so' '*Linux*/x86_64/*.so' '*linux*/x86_64/*.so' -d "$natives" 2>/dev/null || true
done
objs=("$root/opt/java/bin/java" "$root/opt/java/lib/server/libjvm.so" "$root/opt/java/lib/"*.so)
mapfile -t extra < <(find "$natives" -name '*.so')
jlibs="$root/opt/java/lib/server:$root/opt/java/lib"   # so ldd resolves libjvm/libjava between them
deps="$(LD_LIBRARY_PATH="$jlibs" ldd "${objs[@]}" "${extra[@]}" 2>/dev/null | grep -oE '(/[^ ]+\.so[^ ]*)' | grep -v "^$root" | grep -v "^$natives" | sort -u)"
for gcc in /lib/x86_64-linux-gnu/libgcc_s.so.1 /usr/lib/x86_64-linux-gnu/libgcc_s.so.1; do
  [ -f "$gcc" ] && { deps+=$'\n'"$gcc"; break; }
done
missing="$(LD_LIBRARY_PATH="$jlibs" ldd "${objs[@]}" 2>/dev/null | grep 'not found' | sort -u || true)"
[ -z "$missing" ] || die "the Java runtime has unresolved libraries: $missing"
while IFS= read -r so; do
  [ -n "$so" ] || continue
  mkdir -p "$root$(dirname "$so")"
  cp -L "$so" "$root$so"
done <<<"$deps"

# Smoke test before packaging: the runtime starts (on the host, with its own libraries).
run "java -version (jlink runtime)" "$root/opt/java/bin/java" -version

# KRaft storage formatted at build time saves a JVM start (~2.5 s) per container; the cluster id is
# derived from the input hash. The entrypoint formats again only if meta.properties is absent.
hexbytes="$(printf '%s' "$hash" | head -c 32 | sed 's/../\\x&/g')"
cluster_id="$(printf '%b' "$hexbytes" | base64 -w0 | tr '+/' '-_' | tr -d '=')"
cluster_id="${cluster_id/#-/A}"   # an id starting with '-' would read as a command-line flag
[ "${#cluster_id}" = 22 ] || die "bad cluster id '$cluster_id' derived from $hash"
printf '%s\n' "$cluster_id" >"$root/opt/kafka/cluster-id"
# shellcheck disable=SC2016  # literal ${...} placeholders
sed -e 's/\${NODE_ID}/1/g' -e 's/\${QUORUM_VOTERS}/1@127.0.0.1:9093/g' -e 's/\${LISTEN_HOST}/0.0.0.0/g' \
    -e 's/\${PORT}/9092/g' -e 's/\${CONTROLLER_PORT}/9093/g' -e 's/\${ADVERTISED_HOST}/127.0.0.1/g' \
    -e "s|\\\${LOG_DIR}|$root/var/lib/kafka/data|g" -e 's/\${REPLICATION}/1/g' -e 's/\${MIN_ISR}/1/g' \
    "$here/server.properties.template" >"$work/format.properties"
# shellcheck disable=SC2016
if grep -q '\${' "$work/format.properties"; then
  die "server.properties.template has placeholders this script does not fill: $(grep -o '\${[A-Za-z0-9_]*}' "$work/format.properties" | sort -u | tr '\n' ' ')"
fi
run "kafka.tools.StorageTool format" "$root/opt/java/bin/java" -Xmx256m -XX:TieredStopAtLevel=1 \
  -cp "$root/opt/kafka/libs/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$work/format.properties"
[ -f "$root/var/lib/kafka/data/meta.properties" ] || die "StorageTool format wrote no meta.properties"

# Everything root-owned except /var/lib/kafka: the entrypoint starts as root, chowns that to uid
# $KAFKA_UID if needed (e.g. an empty volume) and runs the JVM as that user. Fixed order and
# times so the tarball depends only on its contents.
tarflags=(--numeric-owner --sort=name --mtime=@0 --format=gnu)
tar -C "$root" -cf "$work/rootfs.tar" "${tarflags[@]}" --owner=0 --group=0 --exclude=./var/lib/kafka .
tar -C "$root" -rf "$work/rootfs.tar" "${tarflags[@]}" --owner=$KAFKA_UID --group=$KAFKA_UID ./var/lib/kafka

import_image "$work/rootfs.tar" \
  --change "ENV PATH=/opt/java/bin:/usr/local/bin JAVA_HOME=/opt/java" \
  --change "WORKDIR /var/lib/kafka" \
  --change "EXPOSE 9092" \
  --change "LABEL $LABEL=$hash org.opencontainers.image.title=streams-kafka org.apache.kafka.version=$version" \
  --change 'ENTRYPOINT ["/usr/local/bin/kafka-entrypoint"]' \
  --message "streams-kafka $version (infra/kafka/build-image.sh)"
rm -rf "$work"
