"""One way to say each thing (issue 15): the storage-error mapping, Retry-After, the Idempotency-Key rule, region
URLs, the JSON content setting, the tag vocabulary and the 422 summary each exist once, and the places that said
them on their own now go through that one piece."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime

import pytest
import yaml
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from pydantic import ValidationError

from shared.core.bodies import validate_model
from shared.core.errors import BadRequest, Conflict, PackCloudError, StorageUnavailable, Unprocessable, field_problems
from shared.core.idempotency import IDEMPOTENCY_KEY_PATTERN, check_idempotency_key
from shared.lifecycle.delivery import AckRequest
from shared.registry.models import KeyRotation
from shared.storage.blobs import JSON_CONTENT, index_tags, storage_errors, tag_query
from shared.storage.secrets import SecretsUnavailable
from tests.factories import ROOT, settings_from, settings_values

SHARED = ROOT / "shared"
FUNCTIONS = ROOT / "functions"
BLOBS = SHARED / "storage" / "blobs.py"


def sources(*folders):
    return {path: path.read_text() for folder in folders for path in sorted(folder.rglob("*.py"))}


# -- one storage-error mapping -------------------------------------------------------------------------


def test_an_sdk_error_becomes_a_503_with_retry_after_and_the_log_names_its_type_only(caplog):
    logged = caplog.at_level(logging.WARNING, logger="packcloud.storage")
    with logged, pytest.raises(StorageUnavailable) as caught, storage_errors():
        raise ServiceRequestError("connection refused to https://acct.blob.core.windows.net/records/t/d/r.json")
    assert caught.value.status == 503
    assert caught.value.headers == {"Retry-After": "5"}
    assert caught.value.__suppress_context__  # `from None`: the SDK's message never travels on
    assert "ServiceRequestError" in caplog.text
    assert "records/t/d/r.json" not in caplog.text


def test_the_types_a_caller_handles_pass_through_and_other_errors_are_untouched():
    with pytest.raises(ResourceExistsError), storage_errors(ResourceExistsError):
        raise ResourceExistsError("exists")
    with pytest.raises(StorageUnavailable), storage_errors(ResourceExistsError):
        raise ResourceModifiedError("changed")  # not among the given types: mapped
    with pytest.raises(Conflict), storage_errors():
        raise Conflict("concurrent_change", "a 4xx raised inside the block stays what it is")
    with pytest.raises(KeyError), storage_errors():
        raise KeyError("a bug is not storage trouble")
    with storage_errors():
        pass


def test_a_caller_can_handle_a_case_inside_the_block():
    def read() -> str | None:
        with storage_errors():
            try:
                raise ResourceNotFoundError("gone")
            except ResourceNotFoundError:
                return None

    assert read() is None


def test_the_secret_store_maps_through_the_same_context_manager_naming_its_operation():
    mapped = storage_errors(unavailable=lambda: SecretsUnavailable("read"))
    with pytest.raises(SecretsUnavailable, match="could not read a secret"), mapped:
        raise HttpResponseError("vault said 500")


def test_nothing_in_shared_repeats_the_storage_error_mapping():
    repeated = {
        str(path.relative_to(ROOT)): line.strip()
        for path, text in sources(SHARED).items()
        for line in text.splitlines()
        if re.search(r"except \(?[\w, ]*AzureError\b", line)
        or ("raise StorageUnavailable() from None" in line and path != BLOBS)
    }
    assert repeated == {}


# -- Retry-After on the error class -----------------------------------------------------------------


def test_retry_after_is_given_to_the_error_and_becomes_its_header_not_its_body():
    error = Conflict("submission_in_progress", "the same submission is being stored", retry_after=2)
    assert error.headers == {"Retry-After": "2"}
    assert error.retry_after == 2
    assert error.body() == {"error": "submission_in_progress", "detail": "the same submission is being stored"}
    assert BadRequest("invalid_json", "not JSON").headers == {}
    assert StorageUnavailable("slow", retry_after=1).headers == {"Retry-After": "1"}


def test_no_module_sets_a_header_on_an_error_after_constructing_it():
    found = [
        f"{path.relative_to(ROOT)}: {line.strip()}"
        for path, text in sources(SHARED, FUNCTIONS).items()
        for line in text.splitlines()
        if re.search(r"\.headers\[\"Retry-After\"\]\s*=", line)
    ]
    assert found == []


# -- one Idempotency-Key rule -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        # Named: a random id would differ between xdist's workers, which must collect the same tests.
        pytest.param(uuid.uuid4().hex, id="uuid-hex"),  # the auto-number tests' keys
        pytest.param(str(uuid.uuid4()), id="uuid"),  # the web-form snippet's randomUUID, .NET's Guid.ToString()
        "callback-0001",
        "submission-0001",
        "order:42:invoice.v2_retry",
        "k" * 8,
        "k" * 200,
    ],
)
def test_keys_real_clients_send_are_valid_on_every_route(key):
    assert check_idempotency_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "short",
        "1234567",
        "k" * 201,
        "x" * 201,
        "has space-0001",
        "quote'0001x",
        "schlüssel-0001",
        "key-0001\n",
        12345678,
    ],
)
def test_keys_outside_the_rule_are_a_400_that_never_quotes_them(key):
    with pytest.raises(BadRequest) as caught:
        check_idempotency_key(key)
    assert caught.value.code == "invalid_idempotency_key"
    assert str(key) not in caught.value.detail


def test_openapi_documents_the_rule_once_for_every_route_that_takes_the_key():
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    component = spec["components"]["parameters"]["IdempotencyKey"]
    assert component["schema"]["pattern"] == IDEMPOTENCY_KEY_PATTERN
    taking = {
        (path, method)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict)
        for parameter in operation.get("parameters", [])
        if parameter.get("name") == "Idempotency-Key" or "IdempotencyKey" in parameter.get("$ref", "")
    }
    assert taking == {
        ("/autonumber/{tenant}/{sequence}/next", "post"),
        ("/forms/{tenant}/{dataset}", "post"),
        ("/sms/{tenant}/{dataset}/messages", "post"),
    }
    for path, method in taking:
        assert {"$ref": "#/components/parameters/IdempotencyKey"} in spec["paths"][path][method]["parameters"]


# -- Settings.region_url ----------------------------------------------------------------------------


def test_region_url_is_the_configured_base_url_as_text_or_none():
    values = settings_values("UseDevelopmentStorage=true")
    settings = settings_from({**values, "PACKCLOUD_REGION_URLS": '{"eu": "https://packcloud-eu.example.net/api"}'})
    assert settings.region_url("eu") == "https://packcloud-eu.example.net/api"
    assert settings.region_url("br") is None


def test_no_module_reads_region_urls_itself():
    found = [
        str(path.relative_to(ROOT))
        for path, text in sources(SHARED, FUNCTIONS).items()
        if path.name != "settings.py" and ("region_urls.get(" in text or "region_urls[" in text)
    ]
    assert found == []


# -- one JSON content setting, one tag vocabulary ----------------------------------------------------


def test_json_content_settings_and_index_tags_are_defined_once():
    elsewhere = [
        str(path.relative_to(ROOT))
        for path, text in sources(SHARED).items()
        if path != BLOBS and ("ContentSettings(" in text or re.search(r"[\"'](exp|cap|sub)[\"']\s*[:\]]", text))
    ]
    assert elsewhere == []
    assert JSON_CONTENT.content_type == "application/json"


def test_index_tags_of_a_record_and_of_personal_state():
    captured, expires = datetime(2026, 3, 1, 12, tzinfo=UTC), datetime(2026, 3, 15, 12, tzinfo=UTC)
    assert index_tags("contoso", "visits", captured=captured, expires=expires, subject="ab12") == {
        "t": "contoso",
        "d": "visits",
        "cap": "20260301T120000Z",
        "exp": "20260315T120000Z",
        "sub": "ab12",
    }
    assert index_tags("contoso", "contact", expires=expires) == {
        "t": "contoso",
        "d": "contact",
        "exp": "20260315T120000Z",
    }


def test_tag_queries_are_the_expressions_storage_was_always_asked():
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert tag_query(expired_by=now) == "\"exp\" <= '20260301T120000Z'"
    assert tag_query(tenant="contoso", dataset="visits", captured_by=now) == (
        "\"t\" = 'contoso' AND \"d\" = 'visits' AND \"cap\" <= '20260301T120000Z'"
    )
    assert tag_query(tenant="contoso", subject="ab12") == "\"t\" = 'contoso' AND \"sub\" = 'ab12'"
    assert tag_query(tenant="contoso") == "\"t\" = 'contoso'"
    with pytest.raises(ValueError, match="quotes"):
        tag_query(tenant="it's")
    with pytest.raises(ValueError, match="at least one tag"):
        tag_query()


# -- one summary of field problems ------------------------------------------------------------------


def test_field_problems_name_every_field_and_summarise_the_first_five():
    problems = [{"field": f"f{n}", "reason": "is required"} for n in range(7)]
    error = field_problems("invalid_fields", "the submission does not fit the form", problems, between=" ")
    assert isinstance(error, Unprocessable)
    assert error.status == 422
    assert error.detail == "the submission does not fit the form: " + "; ".join(f"f{n} is required" for n in range(5))
    assert error.extra["errors"] == problems
    alone = field_problems("invalid_format", None, [{"field": "format", "reason": "an unknown token"}])
    assert alone.detail == "format: an unknown token"


def test_validate_model_says_its_422_through_the_same_summary():
    with pytest.raises(Unprocessable) as caught:
        validate_model(KeyRotation, {"signing_key_grace_days": 99, "nope": 1}, "invalid_rotation", "key rotation")
    problems = caught.value.extra["errors"]
    assert caught.value.detail == field_problems("invalid_rotation", "invalid key rotation", problems).detail
    assert caught.value.detail.startswith("invalid key rotation: ")


def test_no_module_builds_its_own_summary():
    found = [
        str(path.relative_to(ROOT))
        for path, text in sources(SHARED, FUNCTIONS).items()
        if path.name != "errors.py" and re.search(r"problems\[:\d+\]", text)
    ]
    assert found == []


# -- rules out of functions/ --------------------------------------------------------------------------


def test_an_acknowledgement_counts_each_id_once_in_the_order_given():
    first, second = "20260301T120000000000Z-0123456789abcdef", "20260301T120001000000Z-0123456789abcdef"
    assert AckRequest.model_validate({"ids": [second, first, second]}).ids == [second, first]
    with pytest.raises(ValidationError):
        AckRequest.model_validate({"ids": ["not-a-record-id"]})
    with pytest.raises(ValidationError):
        AckRequest.model_validate({"ids": []})


def test_functions_hold_no_storage_access_and_no_request_model():
    found = [
        f"{path.relative_to(ROOT)}: {pattern}"
        for path, text in sources(FUNCTIONS).items()
        for pattern in (
            r"\.container\(",
            r"\.list_blobs\(",
            r"class \w+\(BaseModel\)",
            r"\.audit\.append\(",
            "MAX_DATASETS",
        )
        if re.search(pattern, text)
    ]
    assert found == []


def test_errors_keep_their_json_shape():
    error = PackCloudError("code", "detail", retry_after=3, extra_fact=1)
    assert error.body() == {"error": "code", "detail": "detail", "extra_fact": 1}
