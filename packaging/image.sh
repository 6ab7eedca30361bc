#!/bin/sh
# Builds the autoheal image from a built binary and staged plugins:
#
#   packaging/image.sh BINARY PLUGINS_DIR TAG VERSION
#
# stages the build context (the binary, plugins.d/) in a temporary
# directory, so that podman is not handed the repository's target/, and
# builds packaging/Containerfile there. `cargo xtask image` runs it on the
# release build; the tests on the debug one. Extra flags for `podman build`
# (a runtime, ulimits) come from PODMAN_BUILD_FLAGS.
set -eu
[ $# -eq 4 ] || { echo "usage: $0 BINARY PLUGINS_DIR TAG VERSION" >&2; exit 2; }
binary=$1 plugins=$2 tag=$3 version=$4
here=$(cd "$(dirname "$0")" && pwd)
[ -x "$binary" ] || { echo "$binary: not an executable" >&2; exit 1; }
ls "$plugins"/*.toml >/dev/null 2>&1 || { echo "$plugins: no plugin manifests (cargo xtask build-plugins)" >&2; exit 1; }
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
# Debug symbols are most of a debug build's size; an image ships without.
strip --strip-debug -o "$context/autoheal" "$binary" 2>/dev/null || cp "$binary" "$context/autoheal"
chmod 755 "$context/autoheal"
mkdir "$context/plugins.d"
cp "$plugins"/*.toml "$plugins"/*.wasm "$context/plugins.d/"
chmod 644 "$context/plugins.d/"*
# --format docker keeps HEALTHCHECK (the OCI format has no field for it).
# The base is pulled only when this machine has none under its name.
# shellcheck disable=SC2086
podman build ${PODMAN_BUILD_FLAGS:-} --format docker \
  --build-arg "VERSION=$version" --tag "$tag" \
  --file "$here/Containerfile" "$context"
