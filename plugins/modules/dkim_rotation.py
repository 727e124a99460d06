#!/usr/bin/python
# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: dkim_rotation
short_description: Read the DKIM key rotation state of a signing host, plan its next step, record it
version_added: 0.5.0
description:
  - Keeps, on the signing host, the state of each domain's DKIM key rotation (the selector that
    signs, the one published and waiting to sign, the one still published during the grace period,
    when each step happened and the selectors retired).
  - With O(state=planned) (the default) it changes nothing and returns the state, the step due for
    each domain towards O(selector) (C(publish), C(switch) once O(propagation) seconds have passed
    since the publication, C(retire) once O(grace) seconds have passed since the switch, C(wait),
    or C(done)), and the selectors to sign with and to publish once that step is taken. Without
    O(selector) no step is planned.
  - With O(state=advanced) it records the O(steps) a run planned and carried out, stamped with the
    current time; a step the state no longer allows (another run took it) fails.
  - The state file is read without following links and must be a regular file of root's that
    no one else may write; otherwise nothing is read or written.
author: zerotrust.mailstack maintainers (@zerotrust)
options:
  state:
    description: C(planned) reads and plans; C(advanced) records the planned steps.
    type: str
    choices: [planned, advanced]
    default: planned
  path:
    description: The state file (JSON), root's.
    type: path
    default: /var/lib/mailstack-dkim/rotation.json
  domains:
    description: The signing domains.
    type: list
    elements: str
    required: true
  first_selector:
    description: The selector of a domain that never rotated.
    type: str
    required: true
  selector:
    description: The selector to rotate to (one DNS label); omitted, nothing is planned.
    type: str
  propagation:
    description: Seconds between the publication of the new record and the switch.
    type: int
    default: 172800
  grace:
    description: Seconds between the switch and the withdrawal of the old record.
    type: int
    default: 604800
  steps:
    description: With O(state=advanced), the step each domain took (RV(steps) of the plan).
    type: dict
attributes:
  check_mode:
    description: O(state=planned) never changes anything; O(state=advanced) reports what it would record.
    support: full
  diff_mode:
    description: The state before and after.
    support: full
  platform:
    description: Targets POSIX hosts running OpenDKIM.
    platforms: posix
    support: full
"""

EXAMPLES = r"""
- name: Plan the next step of the rotation to selector 2026q4
  zerotrust.mailstack.dkim_rotation:
    domains: [corp.example]
    first_selector: mail
    selector: 2026q4
    propagation: 172800
    grace: 604800
  register: rotation

- name: Record the steps once they are done
  zerotrust.mailstack.dkim_rotation:
    state: advanced
    domains: [corp.example]
    first_selector: mail
    selector: 2026q4
    steps: "{{ rotation.steps }}"
"""

RETURN = r"""
rotation:
  description: The state document (planned - after the planned steps; advanced - as recorded).
  returned: success
  type: dict
steps:
  description: The step of each domain in this run (publish, switch, retire, wait, done).
  returned: success
  type: dict
waits:
  description: Seconds until each waiting domain's next step is due (0 when none is waiting).
  returned: success
  type: dict
selectors:
  description: Per domain, C(sign) (the selector that signs), C(publish) (the selectors whose records
    are published and keys kept) and C(retired) (selectors whose records and keys are gone).
  returned: success
  type: dict
published_keys:
  description: C({domain, selector}) of every key to keep and record to publish (RV(selectors) C(publish)).
  returned: success
  type: list
  elements: dict
retired_keys:
  description: C({domain, selector}) of every retired key and record, to be gone.
  returned: success
  type: list
  elements: dict
records_change:
  description: Whether a step of this run adds or withdraws a record (C(publish), C(retire)), so the zones change.
  returned: success
  type: bool
report:
  description: One line per domain for the operator.
  returned: success
  type: list
  elements: str
"""

import os
import stat
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.zerotrust.mailstack.plugins.module_utils import dkim_rotation
from ansible_collections.zerotrust.mailstack.plugins.module_utils.file_output import (
    UnsafeTarget,
    read_existing,
    write_atomically,
)
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import (
    InputError,
    check_domain,
    check_seconds,
)


def read_state(path):
    """The file's text (None when absent); only a regular file of root's that only root may write."""
    text = read_existing(path)
    if text is not None:
        info = os.lstat(path)
        if info.st_uid != 0 or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise UnsafeTarget("%s must be root's and writable by root alone: refusing to trust it" % path)
    return text


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["planned", "advanced"], default="planned"),
            path=dict(type="path", default="/var/lib/mailstack-dkim/rotation.json"),
            domains=dict(type="list", elements="str", required=True),
            first_selector=dict(type="str", required=True),
            selector=dict(type="str"),
            propagation=dict(type="int", default=172800),
            grace=dict(type="int", default=604800),
            steps=dict(type="dict"),
        ),
        required_if=[("state", "advanced", ("selector", "steps"))],
        supports_check_mode=True,
    )
    params = module.params
    now = int(time.time())
    try:
        for index, domain in enumerate(params["domains"]):
            check_domain(domain, "domains[%d]" % index)
        if params["selector"] is not None:
            dkim_rotation.check_selector(params["selector"])
        check_seconds(params["propagation"], "propagation")
        check_seconds(params["grace"], "grace")
        before_text = read_state(params["path"])
        document = dkim_rotation.load(before_text)
        if params["state"] == "planned":
            steps, waits, after = dkim_rotation.plan(
                document,
                params["domains"],
                params["first_selector"],
                params["selector"],
                params["propagation"],
                params["grace"],
                now,
            )
        else:
            steps = params["steps"]
            waits = dict.fromkeys(params["domains"], 0)
            after = dkim_rotation.advance(
                document, params["domains"], params["first_selector"], params["selector"], steps, now
            )
    except (InputError, dkim_rotation.RotationError, UnsafeTarget) as exc:
        module.fail_json(msg="DKIM rotation: %s" % exc)

    selected = dkim_rotation.selectors(after, params["domains"], params["first_selector"])
    result = dict(
        changed=False,
        rotation=after,
        steps=steps,
        waits=waits,
        selectors=selected,
        records_change=any(step in (dkim_rotation.PUBLISH, dkim_rotation.RETIRE) for step in steps.values()),
        published_keys=dkim_rotation.keys(selected, "publish"),
        retired_keys=dkim_rotation.keys(selected, "retired"),
        report=dkim_rotation.report(after, params["domains"], params["first_selector"], steps, waits, now),
    )
    if params["state"] == "advanced":
        after_text = dkim_rotation.dump(after)
        result["changed"] = after_text != (before_text or dkim_rotation.dump(document))
        if result["changed"]:
            result["diff"] = dict(before=before_text or "", after=after_text)
            if not module.check_mode:
                directory = os.path.dirname(params["path"])
                if not os.path.isdir(directory):
                    os.makedirs(directory, mode=0o755)
                write_atomically(module, params["path"], after_text)
                os.chmod(params["path"], 0o644)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
