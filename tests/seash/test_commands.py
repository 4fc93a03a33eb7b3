"""commands.py: one tree for dispatch, help and completion (using the real TREE)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from seash.commands import ArgKind, complete, help_text, iter_commands, resolve
from seash.errors import UsageError
from seash.tree import TREE


def test_resolve_nested_and_aliases() -> None:
    r = resolve(TREE, ["show", "log", "--for", "3"])
    assert r.path == ("show", "log")
    assert r.args.option("--for") == "3" and not r.args.flag("--follow")
    assert resolve(TREE, ["quit"]).path == ("exit",)
    assert resolve(TREE, ["show", "user"]).path == ("show", "users")


def test_keyword_and_optional_args() -> None:
    assert resolve(TREE, ["add", "%1", "to", "g"]).args.values == {"target": "%1", "group": "g"}
    assert resolve(TREE, ["add", "to", "g"]).args.values == {"target": None, "group": "g"}
    assert resolve(TREE, ["genkeys", "k", "as", "alice"]).args.get("alias") == "alice"
    args = resolve(TREE, ["start", "prog.py", "--x", "1"]).args
    assert args.get("program") == "prog.py" and args.many("args") == ["--x", "1"]
    assert resolve(TREE, ["on", "%2", "show", "log", "--follow"]).args.many("command") == [
        "show", "log", "--follow"]


@pytest.mark.parametrize(("words", "message"), [
    (["frobnicate"], "unknown command"),
    (["show"], "needs one of"),
    (["show", "nothing"], "needs one of"),
    (["genkeys"], "missing NAME"),
    (["move", "%1"], "missing 'to GROUP'"),
    (["stop", "now"], "unexpected argument"),
    (["show", "log", "--forever"], "unknown option"),
    (["show", "log", "--for"], "needs a SECONDS"),
])
def test_usage_errors(words: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve(TREE, words)


def test_help_is_generated_from_the_tree() -> None:
    text = help_text(TREE)
    for path, _ in iter_commands(TREE):
        assert " ".join(path) in text
    assert help_text(TREE, ["show", "log"]).startswith("usage: show log [to FILE] [--follow] [--for SECONDS]")
    assert "subcommands" in help_text(TREE, ["set"])
    assert help_text(TREE, ["set"]).startswith("usage: set NAME VALUE...")
    assert "undefined variable is an error" in help_text(TREE, ["set"])
    assert help_text(TREE, ["uploaddir"]).startswith("usage: uploaddir DIRECTORY [--skip]")
    assert "0600" in help_text(TREE, ["set", "autosave"])
    assert "(no name)" in help_text(TREE, ["show", "hostname"])
    assert help_text(TREE, ["unset"]).startswith("usage: unset NAME...")
    assert "set variable NAME VALUE..." in help_text(TREE, ["set", "var"])
    with pytest.raises(UsageError):
        help_text(TREE, ["nope"])


def _source(kind: ArgKind) -> Sequence[str]:
    return {"target": ["%all", "%1", "%2", "listgood"], "identity": ["alice", "bob"],
            "group": ["listgood"], "bool": ["on", "off"]}.get(kind, [])


@pytest.mark.parametrize(("before", "prefix", "expected"), [
    ([], "sh", ["show"]),
    ([], "s", ["savestate", "set", "show", "split", "start", "stop"]),
    (["show"], "lo", ["log"]),
    (["show", "log"], "--f", ["--follow", "--for"]),
    (["on"], "%", ["%1", "%2", "%all"]),
    (["on", "%1"], "sh", ["show"]),
    (["on", "%1", "show"], "of", ["offcut"]),
    (["as"], "", ["alice", "bob"]),
    (["as", "bob", "set"], "adv", ["advertise"]),
    (["set", "advertise"], "o", ["off", "on"]),
    (["set", "users", "alice"], "", ["alice", "bob"]),
    (["add", "%1"], "", ["to"]),
    (["move", "%1", "to"], "", ["listgood"]),
    (["help"], "sh", ["show"]),
])
def test_completion_walks_the_same_tree(before: list[str], prefix: str, expected: list[str]) -> None:
    assert complete(TREE, before, prefix, _source) == expected


@pytest.mark.parametrize(("words", "hint"), [
    (["shwo", "log"], "did you mean 'show'?"),
    (["show", "lgo"], "did you mean 'log'?"),
    (["show", "log", "--folow"], "did you mean '--follow'?"),
    (["on", "%1", "brwose"], None),  # the trailing command is resolved when it runs
])
def test_typos_get_a_suggestion(words: list[str], hint: str | None) -> None:
    if hint is None:
        resolve(TREE, words)
        return
    with pytest.raises(UsageError, match=hint.replace("?", r"\?")):
        resolve(TREE, words)
    with pytest.raises(UsageError) as far_off:
        resolve(TREE, ["zzzzzz"])
    assert "did you mean" not in str(far_off.value)
