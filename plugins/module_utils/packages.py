# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which of a role's Debian packages a host still lacks.

Asking apt costs a module run and a load of its cache on the host (1-4 s per task,
a dozen tasks on an mx). The base role reads the installed packages once per run
(mailstack_installed_packages); each role's install task then runs only for the
packages that are missing. Unknown (None: base has not read them in this run)
means every package is treated as missing, so apt decides as before.
"""

import re

from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError

# Debian policy 5.6.1: lower case letters, digits, + - . ; at least two characters;
# apt also takes an architecture (name:arch) and a version pin (name=version).
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_PINNED = re.compile(r"[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?")


def _names(names):
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise InputError("packages", "must be a list of package names, got %s" % type(names).__name__)
    for name in names:
        if not isinstance(name, str) or not _PINNED.fullmatch(name):
            raise InputError("packages", "%r is not a Debian package name" % (name,))
    return list(names)


def _installed(installed):
    if installed is not None and not isinstance(installed, dict):
        raise InputError("installed", "must be the package_facts mapping or none, got %s" % type(installed).__name__)
    return installed


def _known_installed(name, installed):
    # A pinned version or architecture is apt's to compare: never skipped.
    return _PACKAGE.fullmatch(name) is not None and name in installed


def missing_packages(names, installed):
    """The packages of `names` that are not installed (all of them when unknown)."""
    names, installed = _names(names), _installed(installed)
    return names if installed is None else [name for name in names if not _known_installed(name, installed)]


def present_packages(names, installed):
    """The packages of `names` that may be installed (all of them when unknown or pinned)."""
    names, installed = _names(names), _installed(installed)
    if installed is None:
        return names
    return [name for name in names if name.split("=")[0].split(":")[0] in installed]
