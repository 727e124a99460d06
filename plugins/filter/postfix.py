# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""main.cf / master.cf rendering filters; the logic is in module_utils/postfix_config.py."""

from ansible.errors import AnsibleFilterError
from ansible_collections.zerotrust.mailstack.plugins.module_utils import postfix_config
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError


def postfix_main_cf(params, known=None):
    try:
        return "\n".join(postfix_config.render_main_cf(params, known))
    except InputError as exc:
        raise AnsibleFilterError("zerotrust.mailstack.postfix_main_cf: %s" % exc) from None


def postfix_master_cf(services, known=None):
    try:
        return "\n".join(postfix_config.render_master_cf(services, known))
    except InputError as exc:
        raise AnsibleFilterError("zerotrust.mailstack.postfix_master_cf: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {"postfix_main_cf": postfix_main_cf, "postfix_master_cf": postfix_master_cf}
