#!/usr/bin/env bash
# ansible-test needs the collection under ansible_collections/<ns>/<name>:
# copy the tracked files there and run the sanity tests on the plugins.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/build/sanity/ansible_collections/zerotrust/mailstack"
rm -rf "$dest"
pip_version="$(python3 -c 'import re, ansible_test._internal.python_requirements as r, inspect; print(re.search(r"pip=.([0-9.]+).", inspect.getsource(r)).group(1))')"
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
cp "$root/scripts/get_pip_offline.py" "$cache/get_pip_${pip_version//./_}.py"
mkdir -p "$dest"
cd "$root"
git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$dest"
cd "$dest"
# A repository of its own, so ansible-test lists these files and not the outer tree.
git init -q && git add -A
ansible-test sanity --local --requirements --python "$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
  --color no plugins/ "$@"
