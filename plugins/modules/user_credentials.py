#!/usr/bin/python
# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: user_credentials
short_description: Make a user's new secrets and the credentials document to keep
version_added: 0.3.0
description:
  - Carries out a plan of M(zerotrust.mailstack.enroll_plan) or
    M(zerotrust.mailstack.revoke_plan) on the controller's copy of the user's
    credentials (C(module_utils/enrollment.py)).
  - For an enrollment, makes the secrets the plan asks for with the code the login
    check verifies them with (C(module_utils/mail_auth.py)); a new password or TOTP
    secret replaces the old one, of the old app passwords only those the directory
    still holds stay, the new one is added.
  - For a revocation, drops the revoked app passwords (and the password and TOTP
    secret when the whole account is revoked).
  - Reads O(credentials_file) and writes nothing; the caller writes the document.
    Run it on the controller with C(no_log), since it returns secrets.
author: zerotrust.mailstack maintainers (@zerotrust)
options:
  plan:
    description: The C(plan) M(zerotrust.mailstack.enroll_plan) or M(zerotrust.mailstack.revoke_plan) returned.
    type: dict
    required: true
  credentials_file:
    description: The controller's credentials document of the user (JSON); it need not exist.
    type: path
    required: true
  domain:
    description: The stack's mail domain, the issuer of the otpauth URI (enrollment only).
    type: str
extends_documentation_fragment:
  - zerotrust.mailstack.controller_decision
"""

EXAMPLES = r"""
- name: Make the new secrets and the credentials document
  zerotrust.mailstack.user_credentials:
    plan: "{{ enroll_plan.plan }}"
    credentials_file: "{{ mailstack_credentials_dir }}/alice.json"
    domain: "{{ mailstack_domain }}"
  delegate_to: localhost
  register: enroll_secrets
  no_log: true
"""

RETURN = r"""
credentials:
  description:
    - The credentials document to write, C(login), C(mail), C(password),
      C(totp_secret), C(otpauth_uri) and C(app_passwords); null for a revocation
      when there is no document.
  type: dict
  returned: always
password:
  description: The new login password, or null.
  type: str
  returned: always
totp_secret:
  description: The new TOTP secret, or null.
  type: str
  returned: always
app_id:
  description: The new app password's id (its public part), or null.
  type: str
  returned: always
app_password:
  description: The whole new app password C(<id>-<secret>), or null.
  type: str
  returned: always
log_fields:
  description: The fields of the log line, which carry no secret.
  type: list
  elements: str
  returned: always
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.zerotrust.mailstack.plugins.module_utils import enrollment


def read_document(path):
    """The old credentials document, {} when there is none; None when it is not a JSON object."""
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def main():
    module = AnsibleModule(
        argument_spec={
            "plan": {"type": "dict", "required": True},
            "credentials_file": {"type": "path", "required": True},
            "domain": {"type": "str"},
        },
        supports_check_mode=True,
    )
    params = module.params
    plan, path = params["plan"], params["credentials_file"]
    old = read_document(path)
    if old is None:
        module.fail_json(msg="credentials_file: %s is not a JSON object; nothing was changed" % path)
    if plan.get("action") == "enroll":
        if not params["domain"]:
            module.fail_json(msg="domain is required for an enrollment")
        fresh = enrollment.new_secrets(plan)
        module.exit_json(
            changed=False,
            credentials=enrollment.enroll_credentials(plan, old, fresh, params["domain"]),
            log_fields=enrollment.enroll_log_fields(plan, fresh["app_id"]),
            **fresh,
        )
    if plan.get("action") == "revoke":
        module.exit_json(
            changed=False,
            credentials=enrollment.revoke_credentials(plan, old if os.path.isfile(path) else None),
            log_fields=plan["log_fields"],
            password=None,
            totp_secret=None,
            app_id=None,
            app_password=None,
        )
    module.fail_json(msg="plan: not a plan of enroll_plan or revoke_plan")


if __name__ == "__main__":
    main()
