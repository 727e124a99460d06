#!/usr/bin/python
# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: enroll_request
short_description: Check a user_enroll.yml request before any host changes
version_added: 0.3.0
description:
  - Checks the C(-e) variables of C(playbooks/user_enroll.yml) with
    C(module_utils/enrollment.py) and returns them normalised. A malformed value,
    a newline, a wrong type or a user that is not an enabled user of
    C(mailstack_users) fails with a message naming the option, before anything is
    read from or written to the directory.
  - Pass each variable with C(default(omit)); an option left out means the
    variable was not given. Options take the raw values (strings from C(-e key=value),
    any type from C(-e) JSON) so that the message is this module's, not a type conversion's.
  - Run it on the controller. It changes nothing and returns no secret.
author: zerotrust.mailstack maintainers (@zerotrust)
options:
  user:
    description: Login of an enabled user of O(users).
    type: raw
  new_password:
    description: Issue a new password (true or false); left out, only when the user has none yet.
    type: raw
  new_totp:
    description: Issue a new TOTP secret (true or false); left out, only when the user has none yet.
    type: raw
  app_name:
    description: Issue an app password for this device (1 to 32 of a-z, 0-9, C(_), C(-)).
    type: raw
  app_scopes:
    description:
      - Services the app password is good for, a list or comma-separated, of C(imap) and C(smtp).
      - Left out, both; C(imap) alone when device bound, which C(smtp) cannot be.
    type: raw
  app_days:
    description: Days the app password is valid, 0 to 99999 (left out, 365).
    type: raw
  app_device_bound:
    description: The app password is accepted only with a client certificate of the stack CA.
    type: raw
  device_cert:
    description: Issue the client certificate C(<user>-<app_name>).
    type: raw
  reinstate:
    description: Enroll a user that C(playbooks/user_revoke.yml) revoked.
    type: raw
  users:
    description: The inventory's C(mailstack_users).
    type: list
    elements: dict
    required: true
extends_documentation_fragment:
  - zerotrust.mailstack.controller_decision
"""

EXAMPLES = r"""
- name: Refuse a malformed request before any change
  zerotrust.mailstack.enroll_request:
    user: "{{ user | default(omit) }}"
    app_name: "{{ app_name | default(omit) }}"
    users: "{{ mailstack_users }}"
  delegate_to: localhost
  register: enroll_request
"""

RETURN = r"""
request:
  description:
    - The normalised request, with C(user), C(mail), C(new_password) and
      C(new_totp) (true, false or null when not given), C(app_name) (or null),
      C(app_scopes) (a list without duplicates), C(app_days) (a number),
      C(app_device_bound), C(device_cert) and C(reinstate) (booleans).
  type: dict
  returned: success
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.zerotrust.mailstack.plugins.module_utils import enrollment
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError


def main():
    spec = {name: {"type": "raw"} for name in enrollment.ENROLL_OPTIONS}
    # A flag asking for a new password, not a password.
    spec["new_password"]["no_log"] = False
    spec["users"] = {"type": "list", "elements": "dict", "required": True}
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    raw = {name: module.params[name] for name in enrollment.ENROLL_OPTIONS}
    try:
        request = enrollment.enroll_request(raw, module.params["users"])
    except InputError as exc:
        module.fail_json(msg=str(exc), option=exc.path)
    module.exit_json(changed=False, request=request)


if __name__ == "__main__":
    main()
