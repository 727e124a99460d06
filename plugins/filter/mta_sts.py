# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MTA-STS and TLS-RPT filters (policy file, DNS records); the logic is in module_utils/mta_sts.py."""

from ansible_collections.zerotrust.mailstack.plugins.module_utils import mta_sts
from ansible_collections.zerotrust.mailstack.plugins.plugin_utils.filter_errors import wrap

mta_sts_policy = wrap(mta_sts.policy_text, "mta_sts_policy")
mta_sts_records = wrap(mta_sts.records, "mta_sts_records")


class FilterModule:
    def filters(self):
        return {"mta_sts_policy": mta_sts_policy, "mta_sts_records": mta_sts_records}
