"""The directories module: many directories, owner/group/mode, one run."""

import grp
import json
import os
import pwd
import stat

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.zerotrust.mailstack.plugins.modules import directories

OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def run(capsys, paths, check_mode=False):
    args = dict(paths=paths, _ansible_check_mode=check_mode)
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        directories.main()
    result = json.loads(capsys.readouterr().out)
    return exited.value.code, result


def entry(path, mode):
    return dict(path=path if isinstance(path, list) else str(path), owner=OWNER, group=GROUP, mode=mode)


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_creates_what_is_missing_and_then_changes_nothing(tmp_path, capsys):
    wanted = [entry(tmp_path / "a", "0750"), entry(tmp_path / "b" / "c", "0700")]
    code, result = run(capsys, wanted)
    assert code == 0 and result["changed"]
    assert result["changed_paths"] == [str(tmp_path / "a"), str(tmp_path / "b" / "c")]
    assert mode_of(tmp_path / "a") == 0o750 and mode_of(tmp_path / "b" / "c") == 0o700

    code, result = run(capsys, wanted)
    assert code == 0 and not result["changed"] and result["changed_paths"] == []


def test_a_list_of_paths_shares_its_attributes(tmp_path, capsys):
    code, result = run(capsys, [entry([str(tmp_path / "x"), str(tmp_path / "y")], "0710")])
    assert code == 0 and result["changed_paths"] == [str(tmp_path / "x"), str(tmp_path / "y")]
    assert mode_of(tmp_path / "x") == mode_of(tmp_path / "y") == 0o710


def test_corrects_drift_only_where_there_is_some(tmp_path, capsys):
    (tmp_path / "a").mkdir(mode=0o755)
    (tmp_path / "b").mkdir()
    os.chmod(tmp_path / "b", 0o700)
    code, result = run(capsys, [entry(tmp_path / "a", "0700"), entry(tmp_path / "b", "0700")])
    assert code == 0 and result["changed_paths"] == [str(tmp_path / "a")]
    assert mode_of(tmp_path / "a") == 0o700
    assert result["diff"][0]["before"]["mode"] == "0755" and result["diff"][0]["after"]["mode"] == "0700"


def test_check_mode_reports_without_changing(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    os.chmod(tmp_path / "a", 0o700)
    code, result = run(capsys, [entry(tmp_path / "a", "0750"), entry(tmp_path / "new", "0700")], check_mode=True)
    assert code == 0 and result["changed_paths"] == [str(tmp_path / "a"), str(tmp_path / "new")]
    assert mode_of(tmp_path / "a") == 0o700 and not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    "bad",
    [
        dict(path="relative/dir", mode="0700"),
        dict(path="/tmp/x", mode="0700", state="absent"),
        dict(mode="0700"),
        dict(path=["/tmp/ok", "relative"], mode="0700"),
        dict(path=["/tmp/ok", None], mode="0700"),
    ],
)
def test_refuses_a_malformed_entry_before_any_change(tmp_path, capsys, bad):
    code, result = run(capsys, [entry(tmp_path / "first", "0700"), bad])
    assert code == 1 and "absolute path" in result["msg"]
    assert not (tmp_path / "first").exists()


def test_a_file_in_the_way_is_an_error(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    code, result = run(capsys, [entry(tmp_path / "f", "0700")])
    assert code == 1 and "is not a directory" in result["msg"]


def test_a_link_is_never_followed(tmp_path, capsys):
    target = tmp_path / "target"
    target.mkdir()
    os.chmod(target, 0o700)
    (tmp_path / "link").symlink_to(target)
    code, result = run(capsys, [entry(tmp_path / "link", "0755")])
    assert code == 1 and "is a link" in result["msg"]
    assert mode_of(target) == 0o700


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(owner="no-such-user-here"), "no such owner"),
        (dict(group="no-such-group-here"), "no such group"),
        (dict(mode="u=rwx"), "mode must be octal"),
        (dict(mode="0750\n"), "mode must be octal"),
        (dict(mode=True), "mode must be octal"),
    ],
)
def test_refuses_an_unknown_account_or_a_bad_mode_before_any_change(tmp_path, capsys, bad, message):
    code, result = run(capsys, [entry(tmp_path / "first", "0700"), dict(entry(tmp_path / "second", "0700"), **bad)])
    assert code == 1 and message in result["msg"]
    assert not (tmp_path / "first").exists()


def test_an_integer_mode_is_read_as_yaml_gives_it(tmp_path, capsys):
    code, result = run(capsys, [entry(tmp_path / "a", 0o2750)])
    assert code == 0 and mode_of(tmp_path / "a") == 0o2750


def test_attributes_are_set_on_the_directory_checked_not_on_a_later_link(tmp_path, capsys, monkeypatch):
    """A swap between the check by path and the change: the descriptor refuses the link."""
    target = tmp_path / "target"
    target.mkdir()
    os.chmod(target, 0o700)
    (tmp_path / "d").mkdir()
    real_open = os.open

    def swap_then_open(path, flags, *args):
        if path == str(tmp_path / "d"):
            os.rmdir(path)
            os.symlink(target, path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(directories.os, "open", swap_then_open)
    code, result = run(capsys, [entry(tmp_path / "d", "0755")])
    assert code == 1 and result["msg"].startswith(str(tmp_path / "d") + ": ")
    assert mode_of(target) == 0o700
