# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MTA-STS and TLS-RPT filters (policy file, DNS records); the logic is in module_utils/mta_sts.py."""

from ansible.errors import AnsibleFilterError
from ansible_collections.zerotrust.mailstack.plugins.module_utils import mta_sts
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError


def mta_sts_policy(mode, mx, max_age):
    try:
        return mta_sts.policy_text(mode, mx, max_age)
    except InputError as exc:
        raise AnsibleFilterError("zerotrust.mailstack.mta_sts_policy: %s" % exc) from None


def mta_sts_records(domain, policy, policy_host, tlsrpt_rua):
    try:
        return mta_sts.records(domain, policy, policy_host, tlsrpt_rua)
    except InputError as exc:
        raise AnsibleFilterError("zerotrust.mailstack.mta_sts_records: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {
            "mta_sts_policy": mta_sts_policy,
            "mta_sts_records": mta_sts_records,
        }
