"""Admin pages for the fraud rule sets: every version, a new draft (the rules as JSON, a
copy of the live set to edit), one version's rules, its backtest, and activation.

The pages send what the REST routes send (gateway.routes.fraud_admin): a draft is read
into the same `RuleSetIn` (exact numbers, the same field checks and messages) and goes
to the same CreateRuleSet call; a backtest is the wallet's BacktestRuleSet, shown with the
same `BacktestOut`. The API's refusals appear beside the form."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response
from fraud.v1 import fraud_pb2
from pydantic import ValidationError
from wallet.v1 import wallet_pb2

from gateway.deps import loads_exact
from gateway.errors import ApiError, from_validation_errors
from gateway.routes.fraud_admin import BacktestOut, RuleSetIn, RuleSetOut
from gateway.web.pages import Page, UserPage, WebRoute, attempt, redirect

router = APIRouter(route_class=WebRoute, include_in_schema=False)

RULE_SETS_PATH = "/app/admin/rulesets"
Version = Annotated[int, Path(ge=1, le=2**62)]
BACKTEST_DEFAULT_RANGE = timedelta(days=1)


def _editable(rule_set: fraud_pb2.RuleSet) -> str:
    """A version's rules as the JSON the draft form (and POST /admin/fraud/rulesets)
    takes; a score left to the kind's default stays unset."""
    rules = []
    for proto, rule in zip(rule_set.rules, RuleSetOut.from_proto(rule_set).rules, strict=True):
        exclude = set() if proto.HasField("score") else {"score"}
        rules.append(rule.model_dump(exclude=exclude))
    return json.dumps(rules, indent=2)


def _draft_body(description: str, rules_json: str) -> RuleSetIn | ApiError:
    """The posted draft read as the REST route reads its body (same codes and messages)."""
    try:
        rules = loads_exact(rules_json.encode("utf-8"))
    except json.JSONDecodeError:
        return ApiError(400, "malformed_json", "The rules are not valid JSON")
    try:
        return RuleSetIn.model_validate({"description": description, "rules": rules})
    except ValidationError as exc:
        return from_validation_errors(exc.errors())


def _draft_error_field(error: ApiError | None) -> str:
    if error is None:
        return ""
    return "description" if error.message.startswith("description") else "rules"


async def _rule_sets(
    page: Page, error: ApiError | None = None, values: dict[str, str] | None = None
) -> Response:
    reply = await page.call(
        page.svc.wallet.fraud_admin.ListRuleSets, fraud_pb2.ListRuleSetsRequest()
    )
    rule_sets = list(reply.rule_sets)
    if values is None:
        live = next((rs for rs in rule_sets if rs.status == "live"), None)
        values = {"description": "", "rules": _editable(live) if live else "[]"}
    return page.render(
        "admin_rulesets.html",
        error.status if error else 200,
        rule_sets=rule_sets,
        error=error,
        error_field=_draft_error_field(error),
        values=values,
    )


@router.get(RULE_SETS_PATH)
async def rule_sets(page: UserPage) -> Response:
    return await _rule_sets(page)


@router.post(RULE_SETS_PATH)
async def create_draft(page: UserPage) -> Response:
    fields = await page.form()
    values = {name: fields.get(name, "") for name in ("description", "rules")}
    body = _draft_body(values["description"], values["rules"])
    if isinstance(body, ApiError):
        return await _rule_sets(page, body, values)
    reply = await attempt(page.call(page.svc.wallet.fraud_admin.CreateRuleSet, body.to_proto()))
    if isinstance(reply, ApiError):
        return await _rule_sets(page, reply, values)
    return redirect(f"{RULE_SETS_PATH}/{reply.version}?notice=draft_created")


def _last_day() -> dict[str, str]:
    """The default range: the day up to the next full minute (`until` is exclusive, so
    what was scored a moment ago is in)."""
    until = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    since = until - BACKTEST_DEFAULT_RANGE
    return {"since": since.isoformat(), "until": until.isoformat()}


async def _rule_set(
    page: Page,
    version: int,
    values: dict[str, str] | None = None,
    result: BacktestOut | None = None,
    error: ApiError | None = None,
) -> Response:
    request = fraud_pb2.GetRuleSetRequest(version=version)
    rule_set = await page.call(page.svc.wallet.fraud_admin.GetRuleSet, request)
    return page.render(
        "admin_ruleset.html",
        error.status if error else 200,
        rs=RuleSetOut.from_proto(rule_set),
        values=values or _last_day(),
        result=result,
        error=error,
        error_field="until" if error and error.message.startswith("until") else "since",
    )


@router.get(f"{RULE_SETS_PATH}/{{version}}")
async def rule_set(version: Version, page: UserPage) -> Response:
    return await _rule_set(page, version)


@router.post(f"{RULE_SETS_PATH}/{{version}}/backtest")
async def backtest(version: Version, page: UserPage) -> Response:
    fields = await page.form()
    values = {name: fields.get(name, "").strip() for name in ("since", "until")}
    request = wallet_pb2.BacktestRuleSetRequest(version=version, **values)
    reply = await attempt(page.call(page.stub.BacktestRuleSet, request))
    if isinstance(reply, ApiError):
        return await _rule_set(page, version, values, error=reply)
    return await _rule_set(page, version, values, BacktestOut.from_proto(reply))


@router.post(f"{RULE_SETS_PATH}/{{version}}/activate")
async def activate_rule_set(version: Version, page: UserPage) -> Response:
    await page.form()
    request = fraud_pb2.ActivateRuleSetRequest(version=version)
    await page.call(page.svc.wallet.fraud_admin.ActivateRuleSet, request)
    return redirect(f"{RULE_SETS_PATH}?notice=activated")
