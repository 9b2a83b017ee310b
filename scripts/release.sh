#!/usr/bin/env bash
# Builds a release of channel-bridge from one git tag: a tarball (the binary, the default
# and demo configs, the docs) with its SHA-256, and the container image, into dist/.
#
#   scripts/release.sh v0.2.0              # tarball and image (needs docker or podman)
#   scripts/release.sh v0.2.0 --no-image   # the tarball only
#
# The tag must exist and match Cargo.toml's version (v0.2.0 ↔ version = "0.2.0"). The
# build runs on `git archive` of the tag, so nothing uncommitted in this checkout can
# leak into a release. The binary is built as the Dockerfile's build stage builds it
# (`cargo build --release --locked`, no line tables). Environment:
#   ENGINE=podman|docker   which container engine builds the image (default: docker, else podman)
#   BINARY=path            package this binary instead of building one (for testing this script)
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: scripts/release.sh TAG [--no-image]" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
tag=$1; shift
image=1
for arg in "$@"; do
  case $arg in
    --no-image) image=0 ;;
    *) usage ;;
  esac
done

git rev-parse -q --verify "refs/tags/$tag" >/dev/null \
  || { echo "no tag $tag (git tag -a $tag -m ...)" >&2; exit 1; }
version=$(git show "$tag:Cargo.toml" | sed -n 's/^version = "\(.*\)"/\1/p' | head -1)
[[ "v$version" == "$tag" ]] \
  || { echo "tag $tag does not match Cargo.toml's version $version at that tag" >&2; exit 1; }

engine=${ENGINE:-}
if [[ $image == 1 && -z $engine ]]; then
  if command -v docker >/dev/null; then engine=docker
  elif command -v podman >/dev/null; then engine=podman
  else echo "neither docker nor podman is installed: pass --no-image for the tarball only" >&2; exit 1
  fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src="$work/src"
mkdir -p "$src" dist
git archive "$tag" | tar -x -C "$src"

if [[ -n ${BINARY:-} ]]; then
  echo "packaging $BINARY (not built from $tag)" >&2
  binary=$BINARY
else
  # Reuse this checkout's dependency builds; the tag's own sources are compiled afresh.
  CARGO_PROFILE_RELEASE_DEBUG=false cargo build --release --locked \
    --manifest-path "$src/Cargo.toml" --target-dir "$PWD/target/release-build" --bin channel-bridge
  binary="$PWD/target/release-build/release/channel-bridge"
fi
"$binary" --version

triple=$(rustc -vV | sed -n 's/^host: //p')
name="channel-bridge-$version-$triple"
stage="$work/$name"
mkdir -p "$stage/bin" "$stage/config" "$stage/scripts"
install -m 0755 "$binary" "$stage/bin/channel-bridge"
cp "$src/config/default.toml" "$src/config/demo.toml" "$stage/config/"
cp "$src/scripts/demo-receiver.py" "$stage/scripts/"
cp -r "$src/docs" "$stage/docs"
cp "$src/README.md" "$src/RELIABILITY.md" "$src/BENCHMARKS.md" "$stage/"
# Reproducible archive: sorted names, fixed owner, the tag's commit time for every file.
stamp=$(git log -1 --format=%ct "$tag")
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$stamp" \
  -C "$work" -czf "dist/$name.tar.gz" "$name"
(cd dist && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
echo "dist/$name.tar.gz"

if [[ $image == 1 ]]; then
  "$engine" build -t "channel-bridge:$version" "$src"
  "$engine" save -o "dist/channel-bridge-$version-image.tar" "channel-bridge:$version"
  (cd dist && sha256sum "channel-bridge-$version-image.tar" > "channel-bridge-$version-image.tar.sha256")
  echo "dist/channel-bridge-$version-image.tar (load with: $engine load -i …)"
fi
