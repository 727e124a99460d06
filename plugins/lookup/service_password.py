# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: service_password
short_description: The directory password of a stack service account, made on first use
version_added: 0.3.0
description:
  - Returns the password with which a service (C(postfix), C(dovecot)) binds to the
    directory. It lives in the controller's state directory
    (C(<state_dir>/secrets/ldap-<account>)), is made on first use (32 letters and digits)
    and read back afterwards, so the ldap role that sets it and the roles that bind with
    it always agree.
author: zerotrust.mailstack maintainers (@zerotrust)
options:
  _terms:
    description: Service account names (lower-case letters, digits, C(.), C(_), C(-)).
    required: true
    type: list
    elements: str
  state_dir:
    description: The controller's state directory (C(mailstack_state_dir)).
    required: true
    type: path
"""

EXAMPLES = r"""
- name: Bind password of the dovecot account
  ansible.builtin.copy:
    content: "{{ lookup('zerotrust.mailstack.service_password', 'dovecot', state_dir=mailstack_state_dir) }}\n"
    dest: /etc/mailstack-auth/ldap.secret
    mode: "0600"
  no_log: true
"""

RETURN = r"""
_raw:
  description: One password per account.
  type: list
  elements: str
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.loader import lookup_loader
from ansible.plugins.lookup import LookupBase
from ansible_collections.zerotrust.mailstack.plugins.module_utils.directory import service_secret_path
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        password = lookup_loader.get("ansible.builtin.password", loader=self._loader, templar=self._templar)
        try:
            paths = [service_secret_path(self.get_option("state_dir"), account) for account in terms]
        except InputError as exc:
            raise AnsibleLookupError("zerotrust.mailstack.service_password: %s" % exc) from None
        return [password.run([path], variables, length=32, chars=["ascii_letters", "digits"])[0] for path in paths]
