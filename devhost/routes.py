"""Routes read from a func.FunctionApp, and ASP.NET-style route templates matched as Azure matches them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

_CONSTRAINTS = {
    "int": r"-?[0-9]+",
    "alpha": r"[A-Za-z]+",
    "guid": r"[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}",
}
_PARAM = re.compile(r"^\{(?P<star>\*)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<constraint>[^}?]+))?(?P<optional>\?)?\}$")


@dataclass(frozen=True)
class HttpRoute:
    function_name: str
    methods: tuple[str, ...]  # empty: every method
    route: str
    auth_level: str  # ANONYMOUS, FUNCTION or ADMIN
    binding_name: str
    handler: Any = field(compare=False, repr=False)
    pattern: re.Pattern[str] = field(compare=False, repr=False, default=re.compile(""))
    literal_segments: int = 0

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path.strip("/"))
        if found is None:
            return None
        return {name: value for name, value in found.groupdict().items() if value is not None}

    def allows(self, method: str) -> bool:
        return not self.methods or method.upper() in self.methods


@dataclass(frozen=True)
class TimerFunction:
    function_name: str
    schedule: str
    run_on_startup: bool
    binding_name: str
    handler: Any = field(compare=False, repr=False)


def compile_template(template: str) -> tuple[re.Pattern[str], int]:
    """A route template as a regular expression, and how many literal segments it has (for precedence)."""
    parts: list[str] = []
    literals = 0
    for segment in template.strip("/").split("/"):
        param = _PARAM.match(segment)
        if param is None:
            parts.append("/" + re.escape(segment))
            literals += 1
            continue
        name = param["name"]
        if param["star"]:
            parts.append(f"(?:/(?P<{name}>.*))?")
            continue
        body = _CONSTRAINTS.get((param["constraint"] or "").lower(), r"[^/]+")
        piece = f"/(?P<{name}>{body})"
        parts.append(f"(?:{piece})?" if param["optional"] else piece)
    pattern = "".join(parts)
    # Every piece begins with "/"; the path it is matched against does not.
    pattern = pattern[1:] if pattern.startswith("/") else pattern.replace("(?:/", "(?:", 1)
    return re.compile(pattern), literals


def _functions(app: func.FunctionApp) -> list[Any]:
    # FunctionApp.get_functions() refuses to run twice on one app (its duplicate-name check remembers the
    # first call), so the list is read once and kept on the app.
    cached = getattr(app, "_devhost_functions", None)
    if cached is None:
        cached = list(app.get_functions())
        app._devhost_functions = cached  # type: ignore[attr-defined]  # our own mark on the app, read back above
    return cached


def _auth_name(level: Any) -> str:
    return str(getattr(level, "name", level or "FUNCTION")).upper()


def http_routes(app: func.FunctionApp) -> list[HttpRoute]:
    """Every HTTP function of the app, most literal templates first (so `px/snippet.js` beats `px/{x}`)."""
    routes = []
    default_auth = _auth_name(getattr(app, "auth_level", None) or "FUNCTION")
    for function in _functions(app):
        trigger = function.get_trigger()
        if type(trigger).__name__ != "HttpTrigger":
            continue
        template = (trigger.route or function.get_function_name()).strip("/")
        pattern, literals = compile_template(template)
        methods = tuple(str(getattr(m, "value", m)).upper() for m in (trigger.methods or ()))
        routes.append(
            HttpRoute(
                function_name=function.get_function_name(),
                methods=methods,
                route=template,
                auth_level=_auth_name(trigger.auth_level) if trigger.auth_level is not None else default_auth,
                binding_name=trigger.name,
                handler=function.get_user_function(),
                pattern=pattern,
                literal_segments=literals,
            )
        )
    return sorted(routes, key=lambda route: (-route.literal_segments, route.route))


def timer_functions(app: func.FunctionApp) -> list[TimerFunction]:
    timers = []
    for function in _functions(app):
        trigger = function.get_trigger()
        if type(trigger).__name__ != "TimerTrigger":
            continue
        timers.append(
            TimerFunction(
                function_name=function.get_function_name(),
                schedule=trigger.schedule,
                run_on_startup=bool(getattr(trigger, "run_on_startup", False)),
                binding_name=trigger.name,
                handler=function.get_user_function(),
            )
        )
    return timers
