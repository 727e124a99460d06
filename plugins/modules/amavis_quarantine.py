#!/usr/bin/python
# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: amavis_quarantine
short_description: List amavis's local quarantine, or release one message to its recipients
version_added: 0.5.0
description:
  - With O(state=listed), returns every quarantined message (id, kind, sender, recipients,
    subject, date, amavis's reason, and when, by whom and why it was released) and changes nothing.
  - With O(state=released), hands the message named by O(id) back to amavis (C(amavisd-release)),
    which sends it to its original recipients only, through the mx's reinjection port. The
    release is logged to syslog (facility mail, tag C(mailstack-quarantine)) with the operator
    and the reason, and recorded, so a second run for the same message changes nothing and does
    not deliver it twice.
  - The quarantine is written by amavis and trusted for nothing; files are read without following
    links and only their header blocks. A message is named by its amavis mail_id, never by a path.
author: zerotrust.mailstack maintainers (@zerotrust)
options:
  state:
    description: C(listed) or C(released).
    type: str
    choices: [listed, released]
    default: listed
  quarantine_dir:
    description: amavis's C($QUARANTINEDIR).
    type: path
    required: true
  id:
    description: The amavis mail_id of the message to release (C(X-Quarantine-ID), 12 characters).
    type: str
  reason:
    description: Why it is released (a ticket, a sentence); one line, required with O(state=released).
    type: str
  operator:
    description: Who releases it, for the log.
    type: str
  ledger:
    description: Root-only file recording the releases done.
    type: path
    default: /var/lib/mailstack-quarantine/released.json
attributes:
  check_mode:
    description: Reports what would be released without releasing it.
    support: full
  diff_mode:
    description: Not supported; a release is reported in RV(messages).
    support: none
  platform:
    description: Targets POSIX hosts running amavis.
    platforms: posix
    support: full
"""

EXAMPLES = r"""
- name: Release one message to its recipients
  zerotrust.mailstack.amavis_quarantine:
    state: released
    quarantine_dir: /var/lib/amavis/virusmails
    id: G_4oe_oTpy2Y
    reason: "INC-4711: the sender's invoice, checked by hand"
    operator: jdoe
"""

RETURN = r"""
messages:
  description: The quarantined messages (listed), or the one released.
  returned: success
  type: list
  elements: dict
"""

import json
import os
import syslog
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.zerotrust.mailstack.plugins.module_utils import quarantine


def read_ledger(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return {}


def write_ledger(path, ledger):
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    temporary = path + ".new"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(ledger, handle, indent=2, sort_keys=True)
    os.replace(temporary, path)


def one_line(module, name, value):
    if not value or not value.strip() or any(ord(char) < 32 or ord(char) == 127 for char in value):
        module.fail_json(msg="%s is required for a release: one line of text, no control characters" % name)
    return value.strip()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["listed", "released"], default="listed"),
            quarantine_dir=dict(type="path", required=True),
            id=dict(type="str"),
            reason=dict(type="str"),
            operator=dict(type="str"),
            ledger=dict(type="path", default="/var/lib/mailstack-quarantine/released.json"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    ledger = read_ledger(params["ledger"])
    if params["state"] == "listed":
        listed = [
            dict(entry, released=ledger.get(entry["id"])) for entry in quarantine.entries(params["quarantine_dir"])
        ]
        module.exit_json(changed=False, messages=listed)
    reason = one_line(module, "reason", params["reason"])
    operator = one_line(module, "operator", params["operator"])
    try:
        entry = quarantine.find(params["quarantine_dir"], params["id"])
    except (ValueError, LookupError) as exc:
        module.fail_json(msg=str(exc))
    if entry["id"] in ledger:
        module.exit_json(changed=False, messages=[dict(entry, released=ledger[entry["id"]])])
    release = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "by": operator, "reason": reason}
    if not module.check_mode:
        rc, out, err = module.run_command(["amavisd-release", entry["file"]])
        if rc != 0 or "250 " not in out + err:
            module.fail_json(msg="amavisd-release %s failed: %s" % (entry["file"], (out + err).strip()))
        ledger[entry["id"]] = release
        write_ledger(params["ledger"], ledger)
        syslog.openlog("mailstack-quarantine", 0, syslog.LOG_MAIL)
        syslog.syslog(
            syslog.LOG_NOTICE,
            "released id=%s kind=%s from=<%s> to=<%s> by=%s reason=%s"
            % (
                entry["id"],
                entry["kind"],
                entry["sender"],
                ">,<".join(entry["recipients"]),
                operator,
                json.dumps(reason),
            ),
        )
    module.exit_json(changed=True, messages=[dict(entry, released=release)])


if __name__ == "__main__":
    main()
