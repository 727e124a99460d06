# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of user enrollment (playbooks/user_enroll.yml); logic in module_utils/mail_auth.py."""

from ansible.errors import AnsibleFilterError
from ansible_collections.zerotrust.mailstack.plugins.module_utils import mail_auth


def otpauth_uri(secret, account, issuer):
    """The otpauth:// URI of a TOTP secret; an error message never holds the secret."""
    try:
        return mail_auth.otpauth_uri(secret, account, issuer)
    except ValueError as exc:
        raise AnsibleFilterError("zerotrust.mailstack.otpauth_uri: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {
            "otpauth_uri": otpauth_uri,
        }
