"""The checked contract: buf lint (buf.yaml: STANDARD with justified exceptions, plus every
element commented) and buf breaking against the committed released image catch what they
are there to catch. Each test breaks a scratch copy of the protos and expects a refusal;
the untouched copy passing first shows a refusal is the break's doing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import BufWorkspace, buf_workspace

WALLET = "wallet/v1/wallet.proto"
FRAUD = "fraud/v1/fraud.proto"


@pytest.fixture
def workspace(tmp_path: Path) -> BufWorkspace:
    return buf_workspace(tmp_path)


def test_the_protos_as_committed_pass_lint_and_the_breaking_check(
    workspace: BufWorkspace,
) -> None:
    lint = workspace.lint()
    assert lint.returncode == 0, lint.stdout + lint.stderr
    breaking = workspace.breaking()
    assert breaking.returncode == 0, breaking.stdout + breaking.stderr


@pytest.mark.parametrize(
    ("path", "old", "new", "named"),
    [
        # A field's number changed: old readers would see the amount as an unknown field.
        (FRAUD, "int64 amount_minor = 2;", "int64 amount_minor = 20;", "amount_minor"),
        # A field's type changed on the same number.
        (WALLET, "int32 fraud_score = 11;", "string fraud_score = 11;", "fraud_score"),
        # A field renamed: the wire is the same, the generated Python and the JSON are not.
        (WALLET, "string frozen_reason = 33;", "string freeze_reason = 33;", "frozen_reason"),
        # An RPC removed: deployed callers get UNIMPLEMENTED.
        (
            WALLET,
            "  rpc DepositFor(DepositForRequest) returns (MovementResponse);\n",
            "",
            "DepositFor",
        ),
        # An enum value renumbered.
        (FRAUD, "BLOCK = 3;", "BLOCK = 4;", 'enum value "3" on enum "Decision"'),
    ],
    ids=["field-number", "field-type", "field-name", "rpc-removed", "enum-number"],
)
def test_the_breaking_check_refuses_a_break_of_the_released_contract(
    workspace: BufWorkspace, path: str, old: str, new: str, named: str
) -> None:
    workspace.edit(path, old, new)
    run = workspace.breaking()
    assert run.returncode != 0, f"buf breaking accepted {old!r} -> {new!r}"
    assert named in run.stdout + run.stderr


def test_the_breaking_check_accepts_a_compatible_addition(workspace: BufWorkspace) -> None:
    workspace.edit(
        WALLET,
        "  string initiated_by_service = 100;\n",
        "  string initiated_by_service = 100;\n  // A new field at a fresh number.\n"
        "  string added_later = 101;\n",
    )
    run = workspace.breaking()
    assert run.returncode == 0, run.stdout + run.stderr


def test_lint_refuses_a_field_without_a_comment(workspace: BufWorkspace) -> None:
    workspace.edit(FRAUD, "  // 0..100\n  int32 score = 1;\n", "  int32 score = 1;  // 0..100\n")
    run = workspace.lint()
    assert run.returncode != 0
    assert 'Field "score" should have a non-empty comment' in run.stdout + run.stderr


def test_lint_refuses_an_rpc_without_a_comment(workspace: BufWorkspace) -> None:
    workspace.edit(
        FRAUD, "  // One movement's verdict: a score, a decision and the rules that hit.\n", ""
    )
    run = workspace.lint()
    assert run.returncode != 0
    assert 'RPC "Score" should have a non-empty comment' in run.stdout + run.stderr
