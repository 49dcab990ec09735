#!/usr/bin/env bash
# Builds the tierd image with podman from deploy/Containerfile:
#   deploy/build-image.sh [TAG]      (default localhost/tierd:<version>)
# No registry is needed: when debian:12-slim is not in local storage, it is made from
# Debian's own packages (mmdebstrap --variant=minbase bookworm, with this host's apt
# sources) and tagged docker.io/library/debian:12-slim, so the Containerfile stays the
# standard one. Environment: PODMAN_FLAGS (runtime flags, default: runc with open-files and
# process limits a rootful podman in a container can set), SOURCE (the repository URL label).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^project(tierd VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
tag=${1:-localhost/tierd:$version}
read -r -a flags <<<"${PODMAN_FLAGS:---runtime runc --ulimit nofile=4096:4096 --ulimit nproc=4096:4096}"
base=docker.io/library/debian:12-slim

if ! podman image exists "$base"; then
  command -v mmdebstrap >/dev/null || { echo "build-image: $base is not in local storage and mmdebstrap is missing" >&2; exit 1; }
  sources=()
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    [ -s "$f" ] && { sources=("$f"); break; }
  done
  echo "build-image: making $base with mmdebstrap (${sources[*]:-default mirror})" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mmdebstrap --quiet --variant=minbase --mode=root bookworm "$tmp/base.tar" "${sources[@]}"
  podman import --quiet "$tmp/base.tar" "$base" >/dev/null
fi

cache=()
# The build stage's apt reuses this host's package cache when there is one.
[ -d /var/cache/apt/archives ] && [ "$(id -u)" -eq 0 ] &&
  cache=(-v /var/cache/apt/archives:/var/cache/apt/archives)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
podman build --quiet --format docker --network host --pull=never "${flags[@]}" "${cache[@]}" \
  --build-arg VERSION="$version" --build-arg REVISION="$revision" \
  --build-arg SOURCE="${SOURCE:-unknown}" -f deploy/Containerfile -t "$tag" . >/dev/null
echo "$tag"
