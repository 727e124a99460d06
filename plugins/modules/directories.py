#!/usr/bin/python
# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: directories
short_description: Keep several directories present with their owner, group and mode in one step
version_added: 0.1.0
description:
  - Creates each listed directory that is missing (with its parents) and sets its
    owner, group and mode, like M(ansible.builtin.file) with C(state=directory),
    but for a whole list in one module run. A converge pays one round trip per
    role, not one per directory.
  - A path that exists and is not a directory, or is a symbolic link, is an error
    naming it; nothing after it is changed. A link is never followed, since whoever owns
    the parent could point it at a directory it wants the converge to hand over. Owner,
    group and mode are read and set through a descriptor opened without following a
    link, so a swap after the check changes nothing but the directory checked.
author: zerotrust.mailstack maintainers (@zerotrust)
options:
  paths:
    description:
      - The directories, each a mapping with C(path) (one absolute path, or a
        list of them that share the attributes) and optionally C(owner),
        C(group) (both C(root) when left out) and C(mode) (left as found when
        left out).
    type: list
    elements: dict
    required: true
attributes:
  check_mode:
    description: Reports what would change without changing it.
    support: full
  diff_mode:
    description: Shows each changed directory's attributes before and after.
    support: full
  platform:
    description: Targets POSIX hosts.
    support: full
    platforms: posix
"""

EXAMPLES = r"""
- name: Close the directories that hold keys
  zerotrust.mailstack.directories:
    paths:
      - {path: /etc/ssl/mailstack, mode: "0755"}
      - {path: /etc/ssl/mailstack/private, group: ssl-cert, mode: "0710"}
      - {path: [/etc/mailstack, /usr/local/lib/mailstack], mode: "0755"}
"""

RETURN = r"""
changed_paths:
  description: The directories created or whose attributes were changed.
  returned: success
  type: list
  elements: str
"""

import grp
import os
import pwd
import re
import stat

from ansible.module_utils.basic import AnsibleModule

ENTRY_KEYS = {"path", "owner", "group", "mode"}
OCTAL_MODE = re.compile(r"0?[0-7]{3,4}")


def one_per_path(entries):
    """Each entry with one path; None when an entry is malformed."""
    flat = []
    for entry in entries:
        paths = entry.get("path")
        paths = [paths] if isinstance(paths, str) else paths
        if set(entry) - ENTRY_KEYS or not isinstance(paths, list):
            return None
        for path in paths:
            if not isinstance(path, str) or not path.startswith("/"):
                return None
            flat.append(dict(entry, path=path))
    return flat


def wanted_attributes(entry):
    """(uid, gid, mode or None) of an entry; ValueError names what is wrong."""
    owner, group, mode = entry.get("owner", "root"), entry.get("group", "root"), entry.get("mode")
    try:
        uid = pwd.getpwnam(owner).pw_uid
    except (KeyError, TypeError):
        raise ValueError("%s: no such owner %r" % (entry["path"], owner)) from None
    try:
        gid = grp.getgrnam(group).gr_gid
    except (KeyError, TypeError):
        raise ValueError("%s: no such group %r" % (entry["path"], group)) from None
    if mode is not None:
        if isinstance(mode, int) and not isinstance(mode, bool):
            mode = "%o" % mode
        if not isinstance(mode, str) or not OCTAL_MODE.fullmatch(mode):
            raise ValueError("%s: mode must be octal, such as '0750'; got %r" % (entry["path"], mode))
        mode = int(mode, 8)
    return uid, gid, mode


def set_attributes(path, uid, gid, mode, check_mode, diff):
    """Set owner, group and mode through a descriptor; True when something differs."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        found = os.fstat(fd)
        changed = False
        if (found.st_uid, found.st_gid) != (uid, gid):
            diff["before"].update(owner=found.st_uid, group=found.st_gid)
            diff["after"].update(owner=uid, group=gid)
            changed = True
            if not check_mode:
                os.fchown(fd, uid, gid)
                found = os.fstat(fd)
        if mode is not None and stat.S_IMODE(found.st_mode) != mode:
            diff["before"]["mode"], diff["after"]["mode"] = "%04o" % stat.S_IMODE(found.st_mode), "%04o" % mode
            changed = True
            if not check_mode:
                os.fchmod(fd, mode)
        return changed
    finally:
        os.close(fd)


def main():
    module = AnsibleModule(
        argument_spec=dict(paths=dict(type="list", elements="dict", required=True)),
        supports_check_mode=True,
    )
    entries = one_per_path(module.params["paths"])
    if entries is None:
        module.fail_json(msg="each entry needs absolute path(s) and only the keys %s" % sorted(ENTRY_KEYS))
    try:
        wanted = [wanted_attributes(entry) for entry in entries]
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    changed_paths, diffs = [], []
    for entry, (uid, gid, mode) in zip(entries, wanted, strict=True):
        path = entry["path"]
        diff = dict(before=dict(path=path), after=dict(path=path))
        created = False
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
            module.fail_json(msg="%s exists and is not a directory (or is a link)" % path, changed_paths=changed_paths)
        if not os.path.lexists(path):
            created = True
            diff["before"]["state"], diff["after"]["state"] = "absent", "directory"
            if not module.check_mode:
                os.makedirs(path)
        changed = created
        if not (created and module.check_mode):
            try:
                changed = set_attributes(path, uid, gid, mode, module.check_mode, diff) or created
            except OSError as exc:
                module.fail_json(msg="%s: %s" % (path, exc), changed_paths=changed_paths)
        if changed:
            changed_paths.append(path)
            diffs.append(diff)
    module.exit_json(changed=bool(changed_paths), changed_paths=changed_paths, diff=diffs)


if __name__ == "__main__":
    main()
