# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # The enrolment and revocation modules: they run on the controller, decide or compute,
    # and change nothing themselves.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    description: Changes nothing, so it runs the same in check mode.
    support: full
  diff_mode:
    description: Produces no diff.
    support: none
  platform:
    description: Runs on the controller.
    support: full
    platforms: posix
"""
