"""The adapters take method names from the C++ program, not from a copy of their own."""

from __future__ import annotations

import subprocess

import pytest
from dataproxy import commands
from dataproxy.binaries import find_binary


def test_methods_come_from_the_real_program():
    binary = find_binary("dataproxy")
    commands.selection_methods.cache_clear()
    infos = commands.selection_methods(binary)
    assert [m.name for m in infos][0] == "importance"
    assert {m.name for m in infos} == {"importance", "random", "stratified"}
    assert {m.name: m.needs_probes for m in infos}["importance"] is True
    table = subprocess.run([binary, "methods"], capture_output=True, text=True, check=True).stdout
    for m in infos:
        assert table.splitlines()[[i.name for i in infos].index(m.name)].startswith(m.name)


def test_unknown_and_old_names_are_refused_with_the_list():
    binary = find_binary("dataproxy")
    commands.check_method("random", binary)
    with pytest.raises(ValueError, match="importance, random, stratified"):
        commands.check_method("magic", binary)
    with pytest.raises(ValueError, match="now called 'importance'"):
        commands.check_method("ours", binary)
    done = subprocess.run(
        [
            binary,
            "generate",
            "--space",
            "x.yaml",
            "--dataset",
            "d",
            "--data-root",
            ".",
            "--ratio",
            "0.1",
            "--method",
            "ours",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "now called 'importance'" in done.stderr
