# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dovecot.conf and Sieve script rendering filters; the logic is in module_utils/dovecot_config.py."""

from ansible_collections.zerotrust.mailstack.plugins.module_utils import dovecot_config
from ansible_collections.zerotrust.mailstack.plugins.plugin_utils.filter_errors import wrap

dovecot_conf = wrap(dovecot_config.render_dovecot_conf, "dovecot_conf")
dovecot_spam_sieve = wrap(dovecot_config.render_spam_sieve, "dovecot_spam_sieve")


class FilterModule:
    def filters(self):
        return {"dovecot_conf": dovecot_conf, "dovecot_spam_sieve": dovecot_spam_sieve}
