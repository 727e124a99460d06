#!/usr/bin/env bash
# Build the collection tarball, install it into an empty path and check that
# ansible-doc reads every module, filter and role from the installed copy.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$root/build/collection-check"
rm -rf "$work"
mkdir -p "$work"
cd "$work"
: > empty.cfg
export ANSIBLE_CONFIG="$work/empty.cfg" ANSIBLE_COLLECTIONS_PATH="$work/installed"
ansible-galaxy collection build --output-path "$work" "$root" >/dev/null
ansible-galaxy collection install --offline -p "$work/installed" "$work"/zerotrust-mailstack-*.tar.gz >/dev/null
installed="$work/installed/ansible_collections/zerotrust/mailstack"
checked=0
for kind in module filter lookup role; do
  case "$kind" in
    module) names=$(cd "$installed/plugins/modules" && ls ./*.py | sed 's|^\./||; s|\.py$||') ;;
    filter) names=$(cd "$installed/plugins/filter" && ls ./*.yml | sed 's|^\./||; s|\.yml$||') ;;
    lookup) names=$(cd "$installed/plugins/lookup" && ls ./*.py | sed 's|^\./||; s|\.py$||') ;;
    role) names=$(cd "$installed/roles" && ls) ;;
  esac
  for name in $names; do
    ansible-doc -t "$kind" "zerotrust.mailstack.$name" >/dev/null
    checked=$((checked + 1))
  done
done
echo "collection: $(basename "$work"/zerotrust-mailstack-*.tar.gz) installs; ansible-doc read $checked plugins and roles"
