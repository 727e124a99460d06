# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the Trusted Domain Project milters (DKIM record value, opendkim.conf,
opendmarc.conf: one syntax); the logic is in module_utils/dkim.py."""

import functools

from ansible_collections.zerotrust.mailstack.plugins.module_utils import dkim
from ansible_collections.zerotrust.mailstack.plugins.plugin_utils.filter_errors import wrap

dkim_key_record = wrap(dkim.public_key_record, "dkim_key_record")
opendkim_conf = wrap(dkim.render_opendkim_conf, "opendkim_conf")
opendmarc_conf = wrap(functools.partial(dkim.render_opendkim_conf, path="opendmarc_conf"), "opendmarc_conf")


class FilterModule:
    def filters(self):
        return {"dkim_key_record": dkim_key_record, "opendkim_conf": opendkim_conf, "opendmarc_conf": opendmarc_conf}
