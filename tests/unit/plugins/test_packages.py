import pytest
from ansible_collections.zerotrust.mailstack.plugins.module_utils import packages
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError

INSTALLED = {"postfix": [{"version": "3.10"}], "nftables": [{"version": "1.1"}]}


def test_only_what_is_not_installed_is_missing():
    assert packages.missing_packages(["postfix", "postfix-ldap", "nftables"], INSTALLED) == ["postfix-ldap"]
    assert packages.missing_packages(["postfix"], INSTALLED) == []


def test_only_what_is_installed_is_present():
    assert packages.present_packages(["telnet", "nftables"], INSTALLED) == ["nftables"]
    assert packages.present_packages(["telnet"], INSTALLED) == []


def test_unknown_installed_set_leaves_the_decision_to_apt():
    assert packages.missing_packages(["postfix"], None) == ["postfix"]
    assert packages.present_packages(["telnet"], None) == ["telnet"]


def test_a_pinned_version_or_architecture_is_left_to_apt():
    assert packages.missing_packages(["postfix=3.10", "nftables:amd64"], INSTALLED) == [
        "postfix=3.10",
        "nftables:amd64",
    ]
    assert packages.present_packages(["postfix=3.10", "telnet:amd64"], INSTALLED) == ["postfix=3.10"]


@pytest.mark.parametrize(
    "names", ["postfix", ["Postfix"], ["postfix\nnginx"], ["postfix=3.10\n"], ["postfix=3 1"], ["a"], [1], None]
)
def test_bad_names_are_refused(names):
    with pytest.raises(InputError):
        packages.missing_packages(names, INSTALLED)


def test_installed_must_be_a_mapping():
    with pytest.raises(InputError, match="package_facts"):
        packages.missing_packages(["postfix"], ["postfix"])
