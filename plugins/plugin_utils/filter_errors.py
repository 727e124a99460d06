# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way this collection's filters report bad input: an AnsibleFilterError
that names the filter (zerotrust.mailstack.<name>: <path>: <reason>)."""

from ansible.errors import AnsibleFilterError
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError


def wrap(function, name=None):
    """`function` as a filter named `name` (its own name by default), its InputError an AnsibleFilterError."""
    name = name or function.__name__

    def filter_function(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except InputError as exc:
            raise AnsibleFilterError("zerotrust.mailstack.%s: %s" % (name, exc)) from None

    filter_function.__name__ = name
    return filter_function
