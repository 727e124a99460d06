# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""main.cf / master.cf / cidr table rendering filters; the logic is in module_utils/postfix_config.py."""

from ansible_collections.zerotrust.mailstack.plugins.module_utils import postfix_config
from ansible_collections.zerotrust.mailstack.plugins.plugin_utils.filter_errors import wrap


def _lines(render):
    return lambda *args, **kwargs: "\n".join(render(*args, **kwargs))


postfix_main_cf = wrap(_lines(postfix_config.render_main_cf), "postfix_main_cf")
postfix_master_cf = wrap(_lines(postfix_config.render_master_cf), "postfix_master_cf")
postfix_cidr_map = wrap(_lines(postfix_config.render_cidr_map), "postfix_cidr_map")


class FilterModule:
    def filters(self):
        return {
            "postfix_main_cf": postfix_main_cf,
            "postfix_master_cf": postfix_master_cf,
            "postfix_cidr_map": postfix_cidr_map,
        }
