#!/usr/bin/python
# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: revoke_plan
short_description: Decide what user_revoke.yml revokes
version_added: 0.3.0
description:
  - From the request M(zerotrust.mailstack.revoke_request) returned and the
    user's app passwords in the directory, chooses the app passwords to delete
    and the device certificate to move aside (C(module_utils/enrollment.py)),
    and the fields of the log line.
  - Refuses a user the directory does not hold, and an app id or device the user
    does not have. Returns no secret.
  - Run it on the controller. It changes nothing.
author: zerotrust.mailstack maintainers (@zerotrust)
options:
  request:
    description: The C(request) M(zerotrust.mailstack.revoke_request) returned.
    type: dict
    required: true
  apps:
    description:
      - The results of a onelevel search of the user's app passwords
        (C(dn), C(mailstackAppId), C(mailstackDevice)).
      - Left out when the search failed, that is when the directory does not hold the user.
    type: list
    elements: dict
  dn:
    description: The user's DN, for the message when the directory does not hold it.
    type: str
    required: true
  search_error:
    description: The search's error message, shown when the directory does not hold the user.
    type: str
    default: ""
  devices_dir:
    description: The controller's directory of device certificates, C(<user>-<device>.pem).
    type: path
    required: true
extends_documentation_fragment:
  - zerotrust.mailstack.controller_decision
"""

EXAMPLES = r"""
- name: Choose the app passwords to delete
  zerotrust.mailstack.revoke_plan:
    request: "{{ revoke_request.request }}"
    apps: "{{ revoke_apps.results | default(omit) }}"
    dn: "uid=alice,ou=people,dc=corp,dc=example"
    devices_dir: "{{ mailstack_pki_dir }}/devices"
  delegate_to: localhost
  register: revoke_plan
"""

RETURN = r"""
plan:
  description:
    - What to revoke; C(what) (C(app), C(device) or C(all)), C(all), C(device),
      C(targets) (the app password entries to delete, each with C(dn) and C(id)),
      C(ids), C(cert) (the device certificate's path, or empty) and C(log_fields).
  type: dict
  returned: success
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.zerotrust.mailstack.plugins.module_utils import enrollment
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError


def main():
    module = AnsibleModule(
        argument_spec={
            "request": {"type": "dict", "required": True},
            "apps": {"type": "list", "elements": "dict"},
            "dn": {"type": "str", "required": True},
            "search_error": {"type": "str", "default": ""},
            "devices_dir": {"type": "path", "required": True},
        },
        supports_check_mode=True,
    )
    params = module.params
    request = params["request"]
    cert = enrollment.device_certificate(params["devices_dir"], request.get("user"), request.get("device"))
    try:
        plan = enrollment.revoke_plan(
            request,
            params["apps"],
            params["dn"],
            params["devices_dir"],
            bool(request.get("device")) and os.path.isfile(cert),
            params["search_error"],
        )
    except InputError as exc:
        module.fail_json(msg=str(exc), option=exc.path)
    module.exit_json(changed=False, plan=plan)


if __name__ == "__main__":
    main()
