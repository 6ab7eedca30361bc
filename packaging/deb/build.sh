#!/bin/sh
# Builds autoheal's Debian package from a built binary and staged plugins:
#
#   packaging/deb/build.sh BINARY PLUGINS_DIR OUT_DIR VERSION
#
# writes OUT_DIR/autoheal_VERSION_ARCH.deb and prints its path. `cargo xtask
# deb` runs it on the release build; the tests on the debug one. Only
# dpkg-deb: no packaging tool to install.
set -eu
[ $# -eq 4 ] || { echo "usage: $0 BINARY PLUGINS_DIR OUT_DIR VERSION" >&2; exit 2; }
binary=$1 plugins=$2 out=$3 version=$4
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
[ -x "$binary" ] || { echo "$binary: not an executable" >&2; exit 1; }
ls "$plugins"/*.toml >/dev/null 2>&1 || { echo "$plugins: no plugin manifests (cargo xtask build-plugins)" >&2; exit 1; }
arch=$(dpkg --print-architecture)
mkdir -p "$out"
stage=$(mktemp -d "$out/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
chmod 755 "$stage"

install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/usr/lib/autoheal/plugins.d" \
  "$stage/etc/autoheal" "$stage/etc/default" "$stage/lib/systemd/system" \
  "$stage/usr/share/doc/autoheal" "$stage/usr/share/man/man1" \
  "$stage/usr/share/bash-completion/completions" \
  "$stage/usr/share/zsh/vendor-completions" \
  "$stage/usr/share/fish/vendor_completions.d"
# Debug symbols are most of a debug build's size; a package ships without.
strip --strip-debug -o "$stage/usr/bin/autoheal" "$binary" 2>/dev/null || cp "$binary" "$stage/usr/bin/autoheal"
chmod 755 "$stage/usr/bin/autoheal"
cp "$plugins"/*.toml "$plugins"/*.wasm "$stage/usr/lib/autoheal/plugins.d/"
chmod 644 "$stage/usr/lib/autoheal/plugins.d/"*
install -m 644 "$here/autoheal.toml" "$stage/etc/autoheal/autoheal.toml"
install -m 600 "$here/default" "$stage/etc/default/autoheal"
install -m 644 "$here/autoheal.service" "$stage/lib/systemd/system/autoheal.service"
install -m 755 "$here/postinst" "$stage/DEBIAN/postinst"
printf '/etc/autoheal/autoheal.toml\n/etc/default/autoheal\n' >"$stage/DEBIAN/conffiles"

# Completions and man pages come from the binary's own clap definitions.
"$binary" completions bash >"$stage/usr/share/bash-completion/completions/autoheal"
"$binary" completions zsh >"$stage/usr/share/zsh/vendor-completions/_autoheal"
"$binary" completions fish >"$stage/usr/share/fish/vendor_completions.d/autoheal.fish"
"$binary" man "$stage/usr/share/man/man1"
gzip -9n "$stage/usr/share/man/man1/"*.1
for doc in README.md docs/configuration.md docs/operations.md docs/security.md; do
  install -m 644 "$repo/$doc" "$stage/usr/share/doc/autoheal/"
done
printf 'Files: *\nLicense: Apache-2.0\n See /usr/share/common-licenses/Apache-2.0.\n' >"$stage/usr/share/doc/autoheal/copyright"
chmod 644 "$stage/usr/share/bash-completion/completions/autoheal" \
  "$stage/usr/share/zsh/vendor-completions/_autoheal" \
  "$stage/usr/share/fish/vendor_completions.d/autoheal.fish" "$stage/usr/share/man/man1/"*

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: autoheal
Version: $version
Architecture: $arch
Maintainer: autoheal maintainers <autoheal@localhost>
Installed-Size: $size
Depends: libc6 (>= 2.34), libgcc-s1, adduser
Recommends: podman | docker.io
Section: admin
Priority: optional
Description: auto-remediation host for Prometheus Alertmanager
 Alertmanager posts alerts to autoheal; sandboxed WebAssembly plugins decide
 and act (restart a named container), under cooldowns, budgets and a
 circuit breaker, with every step in an append-only audit trail. Safe by
 default: disabled and in dry-run until configured otherwise.
CONTROL

deb="$out/autoheal_${version}_${arch}.deb"
# gzip: a few seconds; xz would take a minute on the binary for little gain.
dpkg-deb --root-owner-group -Zgzip --build "$stage" "$deb" >/dev/null
echo "$deb"
