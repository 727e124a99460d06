# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""amavis, clamd and SpamAssassin configuration filters, and the quarantine listing's
lines; the logic is in module_utils/amavis_config.py and module_utils/quarantine.py."""

from ansible.errors import AnsibleFilterError
from ansible_collections.zerotrust.mailstack.plugins.module_utils import amavis_config, quarantine
from ansible_collections.zerotrust.mailstack.plugins.plugin_utils.filter_errors import wrap

amavis_conf = wrap(amavis_config.render_amavis_conf, "amavis_conf")
amavis_overrides = wrap(amavis_config.check_overrides, "amavis_overrides")
clamd_conf = wrap(amavis_config.render_clamd_conf, "clamd_conf")
spam_rules = wrap(amavis_config.render_spam_rules, "spam_rules")


def quarantine_line(entry):
    try:
        return quarantine.summary_line(entry)
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError("zerotrust.mailstack.quarantine_line: not a quarantine entry: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {
            "amavis_conf": amavis_conf,
            "amavis_overrides": amavis_overrides,
            "clamd_conf": clamd_conf,
            "quarantine_line": quarantine_line,
            "spam_rules": spam_rules,
        }
