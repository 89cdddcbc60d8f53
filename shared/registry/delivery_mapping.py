"""How a dataset's records reach Dynamics 365: `pull` (the CRM side pages /sync and acknowledges) or
`dataverse` (PackCloud upserts each record into a Dataverse table itself, shared/lifecycle/dataverse_push.py).

The mapping is part of the dataset document and checked when the dataset is declared: only declared fields can
be mapped (the minimisation of the declaration holds on the way out too), each column once, and the meta values
only where the capability has them. Names are Dataverse logical names, which are lower case.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

DeliveryMode = Literal["pull", "dataverse"]
# Entity set names and column logical names: lower-case letters, digits and '_' (a publisher prefix such as
# `cr7a1_` included), from a letter. Nothing that could leave the URL segment or the JSON key it is put in.
ENTITY_SET_PATTERN = r"^[a-z][a-z0-9_]{0,127}$"
COLUMN_PATTERN = r"^[a-z][a-z0-9_]{0,99}$"
MAX_COLUMNS = 100

Column = Annotated[str, Field(pattern=COLUMN_PATTERN)]
# What a record carries besides its declared fields, and which capability has it.
META_VALUES: dict[str, tuple[str, ...]] = {
    "captured_at": ("pixel", "webform", "geologin", "link", "emailevent"),
    "expires_at": ("pixel", "webform", "geologin", "link", "emailevent"),
    "consent": ("webform",),  # the version of the consent text the person agreed to
    "consent_at": ("webform",),  # when consent was given
    "impossible_travel": ("geologin",),  # true when the sign-in raised an impossible-travel alert
}
# sms records (shared/sms/) have their capture and expiry times too.
META_VALUES["captured_at"] += ("sms",)
META_VALUES["expires_at"] += ("sms",)
MetaValue = Literal["captured_at", "expires_at", "consent", "consent_at", "impossible_travel"]


class DeliveryMapping(BaseModel):
    """`delivery` of a dataset. `pull` (the default) keeps the /sync feed as the only way out."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    mode: DeliveryMode = "pull"
    table: str | None = Field(default=None, pattern=ENTITY_SET_PATTERN, description="the table's entity set name")
    key: Column | None = Field(
        default=None, description="the column that holds the PackCloud record id, with an alternate key on it"
    )
    columns: dict[str, Column] = Field(default_factory=dict, max_length=MAX_COLUMNS)
    meta: dict[MetaValue, Column] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _complete(self) -> DeliveryMapping:
        if self.mode != "dataverse":
            return self
        problems = [
            (name, "is required with mode dataverse") for name in ("table", "key") if getattr(self, name) is None
        ]
        if not self.columns and not self.meta:
            problems.append(("columns", "map at least one declared field (or a meta value) to a column"))
        if problems:
            raise _errors(problems)
        return self

    def sent_columns(self) -> list[tuple[str, str]]:
        """(where, column) of every column a row gets, the key first: `where` names the mapping entry."""
        entries = [("key", self.key)] if self.key is not None else []
        entries += [(f"columns.{field}", column) for field, column in self.columns.items()]
        entries += [(f"meta.{value}", column) for value, column in self.meta.items()]
        return entries


def check_mapping(mapping: DeliveryMapping, capability: str, declared: Iterable[str], consent: bool) -> None:
    """What the mapping must agree with in the rest of the declaration; a ValidationError naming each entry
    (pydantic places it under `delivery`, so a 422 names `delivery.columns.<field>` and the like)."""
    names = set(declared)
    problems = [
        (f"columns.{field}", "only declared fields can be mapped") for field in mapping.columns if field not in names
    ]
    for value in mapping.meta:
        if capability not in META_VALUES[value]:
            problems.append((f"meta.{value}", f"{capability} records have no {value}"))
        elif value.startswith("consent") and not consent:
            problems.append((f"meta.{value}", "the dataset declares no consent_field"))
    seen: dict[str, str] = {}
    for where, column in mapping.sent_columns():
        if column in seen:
            problems.append((where, f"column {column} is already given by {seen[column]}"))
        seen.setdefault(column, where)
    if problems:
        raise _errors(problems)


def _errors(problems: list[tuple[str, str]]) -> ValidationError:
    details = [
        InitErrorDetails(
            type=PydanticCustomError("delivery_mapping", reason),
            loc=tuple(where.split(".")),
            input=None,
        )
        for where, reason in problems
    ]
    return ValidationError.from_exception_data("delivery", details)


def row_values(mapping: DeliveryMapping, record: Mapping[str, Any]) -> dict[str, Any]:
    """The columns of one record's row: mapped declared fields the record holds, and the mapped meta values.
    Unmapped fields never leave PackCloud."""
    fields = record.get("fields") or {}
    row = {column: fields[field] for field, column in mapping.columns.items() if field in fields}
    meta = _meta_values(record)
    row.update({column: meta[value] for value, column in mapping.meta.items() if value in meta})
    return row


def _meta_values(record: Mapping[str, Any]) -> dict[str, Any]:
    meta = record.get("meta") or {}
    consent = meta.get("consent") or {}
    values: dict[str, Any] = {
        "captured_at": record.get("captured_at"),
        "expires_at": record.get("expires_at"),
        "impossible_travel": bool(meta.get("alerts")),
    }
    if consent:
        values["consent"] = consent.get("text_version")
        values["consent_at"] = consent.get("at")
    return {name: value for name, value in values.items() if value is not None}
