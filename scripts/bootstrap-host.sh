#!/usr/bin/env bash
# Prepare a Debian 12/13 machine (as root) to build and test the stack:
# host packages, a Podman set-up that works on hybrid-cgroup hosts as well as
# ordinary ones, and the pinned Python virtualenv. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  podman runc netavark aardvark-dns uidmap slirp4netns fuse-overlayfs
  # netavark (Podman's network stack) sets up container networks with iptables
  iptables
  debootstrap make git python3-venv
  # probes the tests run from the controller
  openssl swaks bind9-dnsutils ldap-utils oathtool
)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# crun refuses hybrid cgroup hosts; runc works on both kinds. Containers may
# not ask for more open files or processes than the host grants, so the
# default ulimits are the host's hard limits, capped.
nofile=$(ulimit -Hn); [[ "$nofile" == unlimited || "$nofile" -gt 65536 ]] && nofile=65536
nproc=$(ulimit -Hu);  [[ "$nproc" == unlimited || "$nproc" -gt 8192 ]] && nproc=8192
mkdir -p /etc/containers/containers.conf.d
conf=/etc/containers/containers.conf.d/50-mailstack.conf
new=$(printf '# written by zerotrust.mailstack scripts/bootstrap-host.sh\n[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n\n[engine]\nruntime = "runc"\n' \
  "$nofile" "$nofile" "$nproc" "$nproc")
if [[ ! -f "$conf" || "$(cat "$conf")" != "$new" ]]; then
  printf '%s\n' "$new" > "$conf"
  echo "bootstrap: wrote $conf"
fi

make --no-print-directory venv
