"""The cost of the worst bodies against a normal post, for every request parser, in process.

For each parser (web-form multipart, URL-encoded and JSON bodies, the JSON bodies of every other route, and
the numbers that queries and headers carry) this builds the most expensive inputs it can at the size limit
(`PACKCLOUD_MAX_BODY_BYTES`, 64 KB by default) and times parsing them (to an answer or a refusal) against a
normal post of the same parser and the same size, measured in the same run, interleaved: the ratio is what
counts, never a time. The normal posts are a long survey: 20 answers of ordinary prose (accents included) that
fill the limit. A parser whose cost is linear in the body keeps every ratio within a small factor; Python's
`email` parser, which read multipart bodies before, took seconds for one body whose Content-Disposition is
a run of quoted semicolons.

Target: every ratio <= MAX_RATIO. Each shape's outcome (accepted, or the 4xx code) is recorded too: no shape
may end in anything but a PackCloudError or a parse.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from bench.common import write_results
from shared.core.bodies import parse_json_object
from shared.core.errors import PackCloudError
from shared.webform.body import parse_form

LIMIT = 65_536
MAX_RATIO = 30.0
ROUNDS = 5
SAMPLE_SECONDS = 0.02
BOUNDARY = "----packcloudbench7MA4YWxkTrZu0gW"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
URLENCODED = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"
PROSE = "Très bien, merci: the delivery was on time and the crew were helpful; 5 stars. "

Parse = Callable[[bytes], object]


@dataclass(frozen=True)
class Parser:
    name: str
    parse: Parse
    normal: bytes
    hostile: dict[str, bytes]


def _form(content_type: str) -> Parse:
    return lambda body: parse_form(body, content_type, LIMIT)


def _json_route(body: bytes) -> object:
    return parse_json_object(body, JSON_TYPE, LIMIT)


def _survey(length: int) -> dict[str, str]:
    """A long survey's answers: 20 of them, each `length` characters of prose."""
    answer = (PROSE * (length // len(PROSE) + 1))[:length]
    return {f"question_{n:02}": answer for n in range(20)}


def _fit(make: Callable[[int], bytes]) -> bytes:
    """The largest body `make(n)` builds within the limit (make grows with n)."""
    low, high = 1, LIMIT
    while low < high:
        middle = (low + high + 1) // 2
        if len(make(middle)) <= LIMIT:
            low = middle
        else:
            high = middle - 1
    return make(low)


def _part(headers: str, value: bytes = b"x") -> bytes:
    return f"--{BOUNDARY}\r\n{headers}\r\n\r\n".encode() + value + b"\r\n"


def _multipart(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def multipart_parser() -> Parser:
    normal = _fit(
        lambda n: _multipart(
            *(_part(f'Content-Disposition: form-data; name="{k}"', v.encode()) for k, v in _survey(n).items())
        )
    )
    hostile = {
        # The old parser's worst: Content-Disposition parameters that are runs of quoted semicolons.
        "quoted_semicolons": _fit(
            lambda n: _multipart(_part('Content-Disposition: form-data; name="a"; b=' + '";' * n))
        ),
        "many_parameters": _fit(lambda n: _multipart(_part('Content-Disposition: form-data; name="a"' + "; p=v" * n))),
        "long_name": _fit(lambda n: _multipart(_part(f'Content-Disposition: form-data; name="{"n" * n}"'))),
        "many_parts": _fit(
            lambda n: _multipart(*(_part(f'Content-Disposition: form-data; name="f{i}"') for i in range(n)))
        ),
        "largest_headers_allowed": _fit(
            lambda n: _multipart(
                *(
                    _part(f'Content-Disposition: form-data; name="f{i}"; p="{"v" * 900}"\r\nContent-Type: text/plain')
                    for i in range(n)
                )
            )
        ),
        "boundary_lookalikes": _fit(
            lambda n: _multipart(_part('Content-Disposition: form-data; name="a"', f"\r\n--{BOUNDARY}x".encode() * n))
        ),
        "many_header_lines": _fit(
            lambda n: _multipart(_part('Content-Disposition: form-data; name="a"' + "\r\nX-A: b" * n))
        ),
    }
    return Parser("multipart", _form(MULTIPART), normal, hostile)


def urlencoded_parser() -> Parser:
    def encoded(values: dict[str, str]) -> bytes:
        return "&".join(f"{quote(k)}={quote(v)}" for k, v in values.items()).encode()

    hostile = {
        "max_fields_all_escaped": _fit(lambda n: "&".join(f"f{i}=" + "%C3%A9" * n for i in range(200)).encode()),
        "one_escaped_value": _fit(lambda n: b"a=" + b"%41" * n),
        "too_many_fields": _fit(lambda n: b"&" * n),
        "many_plus_signs": _fit(lambda n: b"a=" + b"+" * n),
    }
    return Parser("urlencoded", _form(URLENCODED), _fit(lambda n: encoded(_survey(n))), hostile)


def _json_hostile() -> dict[str, bytes]:
    return {
        "deep_arrays": _fit(lambda n: b"[" * n + b"]" * n),
        "deep_objects": _fit(lambda n: b'{"a":' * n + b"1" + b"}" * n),
        "deepest_allowed_repeated": _fit(lambda n: b'{"a":[' + b",".join([b"[" * 30 + b"]" * 30] * n) + b"]}"),
        "huge_integer": _fit(lambda n: b'{"a":' + b"9" * n + b"}"),
        "longest_numbers_allowed": _fit(lambda n: b'{"a":[' + b",".join([b"1" * 40] * n) + b"]}"),
        "many_floats": _fit(lambda n: b'{"a":[' + b",".join([b"1.5"] * n) + b"]}"),
        "infinite_float": b'{"a":' + b"1" + b"0" * 30 + b"e999}",
        "escaped_quotes_unterminated": _fit(lambda n: b'{"a":"' + b'\\"' * n),
        "escaped_unicode": _fit(lambda n: b'{"a":"' + b"\\u00e9" * n + b'"}'),
        "many_keys": _fit(lambda n: json.dumps({f"k{i}": 1 for i in range(n)}).encode()),
    }


def form_json_parser() -> Parser:
    normal = _fit(lambda n: json.dumps(_survey(n), ensure_ascii=False).encode())
    return Parser("form_json", _form(JSON_TYPE), normal, _json_hostile())


def json_body_parser() -> Parser:
    """The JSON bodies of manage, sync, privacy, autonumber, geo-login and registration; the normal post is a
    dataset declaration with as many fields (names, types, flags, sizes, options) as fit."""

    def declaration(count: int) -> bytes:
        fields = [
            {"name": f"field_{i}", "type": "choice", "required": i % 2 == 0, "personal": False, "max_length": 256,
             "options": ["très bien", "bien", "pas mal", "mal"]}
            for i in range(count)
        ]  # fmt: skip
        return json.dumps({"capability": "webform", "retention_days": 14, "fields": fields}).encode()

    return Parser("json", _json_route, _fit(declaration), _json_hostile())


PARSERS: dict[str, Callable[[], Parser]] = {
    "multipart": multipart_parser,
    "urlencoded": urlencoded_parser,
    "form_json": form_json_parser,
    "json": json_body_parser,
}


def parsers() -> list[Parser]:
    return [build() for build in PARSERS.values()]


def outcome(parse: Parse, body: bytes) -> str:
    try:
        parse(body)
    except PackCloudError as error:
        return f"{error.status} {error.code}"
    except Exception as error:  # what a 500 would be; the old parsers' RecursionError and ValueError
        return type(error).__name__
    return "accepted"


def _seconds_per_parse(parse: Parse, body: bytes, calls: int) -> float:
    # This process's CPU time, not the wall clock: on a machine busy with other work (a CI run beside other
    # jobs) the wall clock also counts the time the scheduler gave them, which moved the ratio past its bound.
    # And without the garbage collector, as timeit measures: a collection of everything earlier tests left in
    # the heap, landing in one sample, is not the parser's cost.
    collecting = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        started = time.process_time()
        for _ in range(calls):
            outcome(parse, body)
        return (time.process_time() - started) / calls
    finally:
        if collecting:
            gc.enable()


def _calls_for(parse: Parse, body: bytes) -> int:
    """Enough calls for a sample of about SAMPLE_SECONDS, so that timer resolution does not count."""
    return max(1, int(SAMPLE_SECONDS / max(_seconds_per_parse(parse, body, 1), 1e-7)))


def measure(parser: Parser, rounds: int = ROUNDS) -> dict[str, dict[str, object]]:
    """Each hostile shape's parse cost over the normal post's, best of `rounds` interleaved samples each."""
    normal_calls = _calls_for(parser.parse, parser.normal)
    results = {}
    for shape, body in parser.hostile.items():
        calls = _calls_for(parser.parse, body)
        normal, hostile = [], []
        for _ in range(rounds):
            normal.append(_seconds_per_parse(parser.parse, parser.normal, normal_calls))
            hostile.append(_seconds_per_parse(parser.parse, body, calls))
        results[shape] = {
            "ratio": round(min(hostile) / min(normal), 2),
            "bytes": len(body),
            "outcome": outcome(parser.parse, body),
            "hostile_ms": round(min(hostile) * 1000, 3),
            "normal_ms": round(min(normal) * 1000, 3),
        }
    return results


def run(rounds: int = ROUNDS) -> dict[str, dict[str, dict[str, object]]]:
    return {parser.name: measure(parser, rounds) for parser in parsers()}


def main(argv: list[str] | None = None) -> dict[str, object]:
    rounds = int(argv[0]) if argv else ROUNDS
    shapes = run(rounds)
    worst = max(
        ((name, shape, r["ratio"]) for name, by in shapes.items() for shape, r in by.items()), key=lambda t: t[2]
    )
    result = {"max_ratio": worst[2], "worst": f"{worst[0]}/{worst[1]}", "shapes": shapes, "limit_bytes": LIMIT}
    for name, by in shapes.items():
        for shape, r in by.items():
            print(
                f"{name:10} {shape:30} {r['bytes']:6} B  {r['hostile_ms']:9.3f} ms vs normal {r['normal_ms']:7.3f} ms"
                f"  ratio {r['ratio']:8.2f}  {r['outcome']}"
            )
    print(f"parsers: worst ratio {worst[2]} ({result['worst']}), target <= {MAX_RATIO:g}")
    write_results("parsers", result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
