#!/usr/bin/env bash
# Build (or reuse) the systemd container image the local stack runs on.
# No registry is needed: debootstrap writes a Debian root into a folder and
# `podman import` turns it into an image. The tag carries a hash of this
# script and the package list, so a second run reuses the cached image.
#
#   MAILSTACK_DISTRO=trixie|bookworm  (default trixie)
#   MAILSTACK_MIRROR=<debian mirror>  (default http://deb.debian.org/debian)
# Prints the image reference on stdout.
set -euo pipefail

distro="${MAILSTACK_DISTRO:-trixie}"
mirror="${MAILSTACK_MIRROR:-http://deb.debian.org/debian}"
here="$(cd "$(dirname "$0")" && pwd)"
packages_file="$here/image-packages.txt"

case "$distro" in
  trixie|bookworm) ;;
  *) echo "build-image: MAILSTACK_DISTRO must be trixie or bookworm, not '$distro'" >&2; exit 2 ;;
esac

digest="$(cat "$0" "$packages_file" | sha256sum | cut -c1-12)"
image="localhost/mailstack-${distro}:${digest}"

if podman image exists "$image"; then
  echo "$image"
  exit 0
fi

root="$(mktemp -d /var/tmp/mailstack-root.XXXXXX)"
trap 'rm -rf "$root"' EXIT
mapfile -t extra < <(grep -vE '^\s*(#|$)' "$packages_file")

echo "build-image: debootstrap $distro into $root" >&2
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus \
  "$distro" "$root" "$mirror" >&2

# Keep daemons from starting inside the chroot while packages install.
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
cat > "$root/etc/apt/sources.list" <<EOF
deb $mirror $distro main
deb $mirror $distro-updates main
EOF
chroot "$root" apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive chroot "$root" \
  apt-get install -y -qq --no-install-recommends "${extra[@]}" >&2
chroot "$root" apt-get clean
rm -f "$root/usr/sbin/policy-rc.d"
# Package lists stay: a converge soon after the build need not fetch them again.
rm -rf "$root"/tmp/* "$root"/var/tmp/*

# Each container makes its own SSH host keys when it first boots, as a cloud
# image does: none are baked into the image, so no two hosts share one.
rm -f "$root"/etc/ssh/ssh_host_*
mkdir -p "$root/etc/systemd/system/ssh.service.d"
printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
  > "$root/etc/systemd/system/ssh.service.d/10-host-keys.conf"

# Units that make no sense in a container and slow its boot.
for unit in systemd-udevd.service systemd-udev-trigger.service getty@tty1.service \
            systemd-networkd-wait-online.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
: > "$root/etc/machine-id"

echo "build-image: importing $image" >&2
tar -C "$root" -c . | podman import \
  --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' \
  - "$image" >&2
echo "$image"
