"""`POST /api/manage/tenants/{tenant}/delivery/check`: a token, then `WhoAmI`, answering which step failed in words
that name what to check and never echo a secret, a token or Dataverse's own text."""

from __future__ import annotations

from typing import Any

import requests

from shared.dataverse.client import DataverseClient, DeliveryProblem, TokenSource
from shared.dataverse.targets import Target, Targets

STEPS = ("token", "organization_url", "permission")
ADVICE = {
    "credentials_refused": "Microsoft Entra ID refused the application: check the client id and the client secret or "
    "certificate, and that it has not expired",
    "entra_tenant_unknown": "Microsoft Entra ID knows no such tenant: check entra_tenant_id",
    "token_unavailable": "Microsoft Entra ID did not answer: retry later",
    "secret_missing": "the target's secret is no longer in the secret store: give the target again",
    "organization_not_in_entra_tenant": "the organisation is not an application of this Entra tenant: check "
    "organization_url and entra_tenant_id",
    "not_an_application_user": "the organisation refused the application: create its application user with a "
    "security role that may write the table (docs/delivery.md)",
    "unauthorized": "the organisation refused the application's token: create its application user (docs/delivery.md)",
}
STEP_ADVICE = {
    "token": "no token for the application",
    "organization_url": "the organisation URL did not answer as a Dynamics 365 Web API: check organization_url",
    "permission": "the organisation refused the application",
}


def check_target(targets: Targets, target: Target, session: requests.Session) -> dict[str, Any]:
    """Each step's result; a token source of its own, so that the check really asks Entra ID for a token."""
    try:
        credentials = targets.credentials(target)
        if credentials is None:
            raise DeliveryProblem("secret_missing", "token")
        tokens = TokenSource(credentials, target.organization_url, session)
        tokens.token()
        who = DataverseClient(session, target.organization_url, tokens).who_am_i()
    except DeliveryProblem as problem:
        failed = STEPS.index(problem.step)
        steps = {
            step: ("ok" if n < failed else "failed" if n == failed else "not_tried") for n, step in enumerate(STEPS)
        }
        detail = ADVICE.get(problem.code, STEP_ADVICE[problem.step])
        return {"ok": False, "steps": steps, "failed_step": problem.step, "code": problem.code, "detail": detail}
    return {"ok": True, "steps": dict.fromkeys(STEPS, "ok"), **who}
