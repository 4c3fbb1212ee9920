#!/usr/bin/env bash
# Builds the base image every image of deploy/ starts FROM, tagged with the exact name the
# Containerfiles use (debian:bookworm-slim), from Debian's own packages: debootstrap
# --variant=minbase bookworm, trimmed as the official slim image is (no docs, man pages or
# locales; dpkg keeps them out of later installs too), then `podman import`.
# Where a registry is reachable, `podman pull docker.io/library/debian:bookworm-slim` gives the
# official one instead; the Containerfiles are the same either way.
#
#   deploy/base.sh            build it unless an image of that name exists
#   deploy/base.sh --force    rebuild it
#
# The mirror is DEBIAN_MIRROR, else the first Debian URI in /etc/apt/sources.list.d (or
# /etc/apt/sources.list), else http://deb.debian.org/debian.
set -euo pipefail

IMAGE="${BASE_IMAGE:-debian:bookworm-slim}"
SUITE=bookworm
PODMAN=(podman)

if [ "${1:-}" != "--force" ] && "${PODMAN[@]}" image exists "$IMAGE"; then
  echo "base image $IMAGE exists (deploy/base.sh --force rebuilds it)"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "deploy/base.sh: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "deploy/base.sh: debootstrap needs root" >&2; exit 1; }

mirror="${DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  # deb822 files: "URIs: http://.../debian"; one-line files: "deb http://.../debian bookworm main".
  mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:[[:space:]]*\(\S*\/debian\)\/\?$/\1/p' | head -1)
fi
if [ -z "$mirror" ]; then
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\(\S*\/debian\)\/\?[[:space:]].*/\2/p' | head -1)
fi
mirror="${mirror:-http://deb.debian.org/debian}"

rootfs=$(mktemp -d /tmp/usdcop-base.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap --variant=minbase $SUITE from $mirror"
debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
  || { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; echo "deploy/base.sh: debootstrap failed" >&2; exit 1; }
rm -f "$rootfs.log"

# The same suites as the official image (updates and security from the same host).
security="${mirror%/debian}/debian-security"
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES

# What the official slim image leaves out, now and in every later apt-get install.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
DPKG
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs"/usr/share/{man,info,lintian}/* "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/tmp/*
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +

tar -C "$rootfs" --numeric-owner -c . \
  | "${PODMAN[@]}" import -q --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$IMAGE" >/dev/null
echo "base image $IMAGE: $("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
