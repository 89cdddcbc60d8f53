"""`function_app` is imported as a new instance imports it: the collector off while it runs, everything it made
frozen after, the collector back on (shared/core/startup.py); a start-up that fails freezes nothing."""

from __future__ import annotations

from tests.factories import in_new_interpreter, settings_env

PROBE = (
    "import gc\n"
    "try:\n"
    "    import function_app\n"
    "    functions = len(function_app.app.get_functions())\n"
    "except Exception:\n"
    "    functions = 0\n"
    "print(gc.isenabled(), gc.get_freeze_count(), functions)\n"
)


def test_the_import_ends_with_its_objects_frozen_and_the_collector_on(azurite):
    enabled, frozen, functions = in_new_interpreter(settings_env(azurite), PROBE)
    assert enabled == "True"
    assert int(frozen) > 50_000  # the modules, classes and schemas the import made (about 130,000)
    assert int(functions) > 40


def test_an_import_stopped_by_a_bad_setting_freezes_nothing_and_leaves_the_collector_on(azurite):
    environment = {**settings_env(azurite), "PACKCLOUD_REGION": "moon"}
    assert in_new_interpreter(environment, PROBE) == ["True", "0", "0"]
