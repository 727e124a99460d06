# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dovecot.conf and Sieve script rendering filters; the logic is in module_utils/dovecot_config.py."""

from ansible.errors import AnsibleFilterError
from ansible_collections.zerotrust.mailstack.plugins.module_utils import dovecot_config
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError


def dovecot_conf(conf, include_keys=None):
    try:
        return dovecot_config.render_dovecot_conf(conf, include_keys)
    except InputError as exc:
        raise AnsibleFilterError("zerotrust.mailstack.dovecot_conf: %s" % exc) from None


def dovecot_spam_sieve(mailbox):
    try:
        return dovecot_config.render_spam_sieve(mailbox)
    except InputError as exc:
        raise AnsibleFilterError("zerotrust.mailstack.dovecot_spam_sieve: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {"dovecot_conf": dovecot_conf, "dovecot_spam_sieve": dovecot_spam_sieve}
