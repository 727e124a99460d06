#!/usr/bin/python
# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: new_credentials
short_description: Make a mail user's new secrets (password, TOTP secret, app password)
version_added: 0.3.0
description:
  - Makes the secrets C(playbooks/user_enroll.yml) issues, with the same code the login
    check verifies them with (C(module_utils/mail_auth.py)) and a cryptographic random
    source. Nothing is stored; the caller puts each secret where it belongs.
  - Run it on the controller with C(no_log), since it returns secrets. It changes nothing.
author: zerotrust.mailstack maintainers (@zerotrust)
options:
  password:
    description: Make a login password (20 characters of letters, digits, C(-_.)).
    type: bool
    default: false
  totp:
    description: Make a TOTP secret (160 bits, base32 without padding).
    type: bool
    default: false
  app:
    description: Make an app password C(<id>-<secret>) (8 and 24 characters).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Make a password and a TOTP secret
  zerotrust.mailstack.new_credentials:
    password: true
    totp: true
  delegate_to: localhost
  register: fresh
  no_log: true
"""

RETURN = r"""
password:
  description: The login password, or null when not asked for.
  type: str
  returned: always
totp_secret:
  description: The TOTP secret, or null.
  type: str
  returned: always
app_id:
  description: The app password's id (its public part), or null.
  type: str
  returned: always
app_password:
  description: The whole app password C(<id>-<secret>), or null.
  type: str
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.zerotrust.mailstack.plugins.module_utils import mail_auth


def main():
    module = AnsibleModule(
        argument_spec={
            "password": {"type": "bool", "default": False},
            "totp": {"type": "bool", "default": False},
            "app": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    params = module.params
    app_password = mail_auth.new_app_password() if params["app"] else None
    module.exit_json(
        changed=False,
        password=mail_auth.new_login_password() if params["password"] else None,
        totp_secret=mail_auth.new_totp_secret() if params["totp"] else None,
        app_id=mail_auth.parse_app_password(app_password) if app_password else None,
        app_password=app_password,
    )


if __name__ == "__main__":
    main()
