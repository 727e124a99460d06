#!/usr/bin/python
# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: enroll_plan
short_description: Decide what user_enroll.yml issues to a user
version_added: 0.3.0
description:
  - From the request M(zerotrust.mailstack.enroll_request) returned and the
    directory's entry of the user, decides what to issue (C(module_utils/enrollment.py)),
    a new password or TOTP secret when asked or when the user has none yet, both
    when a revoked user is reinstated, an app password, a device certificate.
  - Refuses a user the directory does not hold, and a revoked user unless the
    request reinstates it. Makes no secret and returns none, so its messages show.
  - Run it on the controller. It changes nothing.
author: zerotrust.mailstack maintainers (@zerotrust)
options:
  request:
    description: The C(request) M(zerotrust.mailstack.enroll_request) returned.
    type: dict
    required: true
  entries:
    description:
      - The results of a base search of the user's entry (C(userPassword),
        C(mailstackTotpSecret), C(mailstackRevoked)); none when the directory
        does not hold the user. Kept out of the module's output.
    type: list
    elements: dict
    required: true
  apps:
    description:
      - The results of a onelevel search of the user's app passwords (C(mailstackAppId)).
      - Left out when that search failed; the plan is then refused, since the credentials
        file would lose the app passwords it lists.
    type: list
    elements: dict
  dn:
    description: The user's DN, for the message when the directory does not hold it.
    type: str
    required: true
  search_error:
    description:
      - The searches' error message, shown when the directory does not hold the user
        or its app passwords could not be read.
    type: str
    default: ""
extends_documentation_fragment:
  - zerotrust.mailstack.controller_decision
"""

EXAMPLES = r"""
- name: Decide what to issue
  zerotrust.mailstack.enroll_plan:
    request: "{{ enroll_request.request }}"
    entries: "{{ enroll_entry.results | default([]) }}"
    apps: "{{ enroll_apps.results }}"
    dn: "uid=alice,ou=people,dc=corp,dc=example"
  delegate_to: localhost
  register: enroll_plan
"""

RETURN = r"""
plan:
  description:
    - What to issue; C(password), C(totp), C(app), C(device_cert) and C(reinstate)
      (booleans), C(changes) (the names of those issued), the app password's
      C(app_name), C(app_scopes), C(app_device_bound) and C(app_expires) (LDAP
      generalized time), C(held_apps) (the app ids the directory holds) and
      C(pki_device) (the device certificate for role pki, or null).
  type: dict
  returned: success
"""

import datetime

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.zerotrust.mailstack.plugins.module_utils import enrollment
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError


def main():
    module = AnsibleModule(
        argument_spec={
            "request": {"type": "dict", "required": True},
            # The entry holds the password hash and the TOTP secret.
            "entries": {"type": "list", "elements": "dict", "required": True, "no_log": True},
            "apps": {"type": "list", "elements": "dict"},
            "dn": {"type": "str", "required": True},
            "search_error": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        plan = enrollment.enroll_plan(
            params["request"],
            params["entries"],
            params["apps"],
            params["dn"],
            datetime.datetime.now(enrollment.UTC),
            params["search_error"],
        )
    except InputError as exc:
        module.fail_json(msg=str(exc), option=exc.path)
    module.exit_json(changed=False, plan=plan)


if __name__ == "__main__":
    main()
