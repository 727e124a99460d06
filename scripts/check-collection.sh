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
# One ansible-doc process reads every plugin and role (it fails on any it cannot
# read); each file the collection ships must be among them.
ansible-doc --metadata-dump --playbook-dir "$work" zerotrust.mailstack > dump.json
python3 - "$installed" dump.json <<'PY'
import json, pathlib, sys
installed, dump = pathlib.Path(sys.argv[1]), json.load(open(sys.argv[2]))["all"]
shipped = {
    "module": [p.stem for p in (installed / "plugins" / "modules").glob("*.py")],
    "filter": [p.stem for p in (installed / "plugins" / "filter").glob("*.yml")],
    "lookup": [p.stem for p in (installed / "plugins" / "lookup").glob("*.py")],
    "role": [p.name for p in (installed / "roles").iterdir()],
}
checked = 0
for kind, names in shipped.items():
    missing = sorted(set(names) - {name.split(".")[-1] for name in dump[kind]})
    if missing:
        sys.exit("collection: ansible-doc does not read %s %s" % (kind, ", ".join(missing)))
    checked += len(names)
print("collection: %s installs; ansible-doc read %d plugins and roles"
      % (next(pathlib.Path(".").glob("zerotrust-mailstack-*.tar.gz")).name, checked))
PY
