# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""amavis, clamd and SpamAssassin configuration filters; the logic is in module_utils/amavis_config.py."""

from ansible.errors import AnsibleFilterError
from ansible_collections.zerotrust.mailstack.plugins.module_utils import amavis_config, quarantine
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError


def amavis_conf(conf):
    try:
        return amavis_config.render_amavis_conf(conf)
    except InputError as exc:
        raise AnsibleFilterError("zerotrust.mailstack.amavis_conf: %s" % exc) from None


def amavis_overrides(conf):
    try:
        return amavis_config.check_overrides(conf)
    except InputError as exc:
        raise AnsibleFilterError("zerotrust.mailstack.amavis_overrides: %s" % exc) from None


def quarantine_line(entry):
    try:
        return quarantine.summary_line(entry)
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError("zerotrust.mailstack.quarantine_line: not a quarantine entry: %s" % exc) from None


def clamd_conf(conf):
    try:
        return amavis_config.render_clamd_conf(conf)
    except InputError as exc:
        raise AnsibleFilterError("zerotrust.mailstack.clamd_conf: %s" % exc) from None


def spam_rules(rules):
    try:
        return amavis_config.render_spam_rules(rules)
    except InputError as exc:
        raise AnsibleFilterError("zerotrust.mailstack.spam_rules: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {
            "amavis_conf": amavis_conf,
            "amavis_overrides": amavis_overrides,
            "clamd_conf": clamd_conf,
            "quarantine_line": quarantine_line,
            "spam_rules": spam_rules,
        }
