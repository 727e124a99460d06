#!/usr/bin/python
# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: revoke_request
short_description: Check a user_revoke.yml request before any host changes
version_added: 0.3.0
description:
  - Checks the C(-e) variables of C(playbooks/user_revoke.yml) with
    C(module_utils/enrollment.py) and returns them normalised. The request names
    exactly one thing to revoke, an app password, a device or the whole account;
    a malformed value, a newline or a wrong type fails with a message naming the
    option, before anything is read from or written to the directory.
  - Pass each variable with C(default(omit)); an option left out means the variable was not given.
  - Run it on the controller. It changes nothing and returns no secret.
author: zerotrust.mailstack maintainers (@zerotrust)
options:
  user:
    description: Login of the mail user.
    type: raw
  app:
    description: Id of the app password to delete (8 of a-z, 0-9).
    type: raw
  device:
    description: Device whose app passwords and certificate are revoked (1 to 32 of a-z, 0-9, C(_), C(-)).
    type: raw
  all:
    description: Revoke the whole account (true or false).
    type: raw
extends_documentation_fragment:
  - zerotrust.mailstack.controller_decision
"""

EXAMPLES = r"""
- name: Refuse a malformed request before any change
  zerotrust.mailstack.revoke_request:
    user: "{{ user | default(omit) }}"
    app: "{{ app | default(omit) }}"
    device: "{{ device | default(omit) }}"
    all: "{{ all | default(omit) }}"
  delegate_to: localhost
  register: revoke_request
"""

RETURN = r"""
request:
  description:
    - The normalised request, with C(user), C(what) (C(app), C(device) or C(all)),
      C(app) and C(device) (each null unless named).
  type: dict
  returned: success
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.zerotrust.mailstack.plugins.module_utils import enrollment
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError


def main():
    module = AnsibleModule(
        argument_spec={name: {"type": "raw"} for name in enrollment.REVOKE_OPTIONS},
        supports_check_mode=True,
    )
    try:
        request = enrollment.revoke_request({name: module.params[name] for name in enrollment.REVOKE_OPTIONS})
    except InputError as exc:
        module.fail_json(msg=str(exc), option=exc.path)
    module.exit_json(changed=False, request=request)


if __name__ == "__main__":
    main()
