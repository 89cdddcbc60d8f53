"""A small function app that exercises what the local host must do, independent of PackCloud."""

import asyncio
import json
import os
import threading

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
bp = func.Blueprint()


def echo_body(req: func.HttpRequest) -> dict:
    return {
        "method": req.method,
        "url": req.url,
        "params": dict(req.params),
        "route": dict(req.route_params),
        "body": req.get_body().decode(),
        "forwarded": req.headers.get("x-forwarded-for"),
        "custom": req.headers.get("x-custom"),
    }


@bp.route(route="echo/{name}/{n:int}/{rest?}", methods=["POST", "GET"], auth_level=func.AuthLevel.ANONYMOUS)
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(echo_body(req)), mimetype="application/json", headers={"X-Seen": "1"})


@bp.route(route="items/special", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def items_special(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("literal")


@bp.route(route="items/{item}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def items_any(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("param:" + req.route_params["item"])


@app.route(route="secret", methods=["GET"])
def secret(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("function level")


@app.route(route="admin-only", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin level")


@app.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("this function always fails")


_barriers: dict[str, threading.Barrier] = {}
_barriers_lock = threading.Lock()


@app.route(route="together", auth_level=func.AuthLevel.ANONYMOUS)
def together(req: func.HttpRequest) -> func.HttpResponse:
    """Answers once `n` calls of one group are in progress at the same moment, which only a concurrent host can do.

    A barrier rather than overlapping sleeps: on a busy machine the clients may start further apart than any sleep.
    """
    with _barriers_lock:
        barrier = _barriers.setdefault(req.params["group"], threading.Barrier(int(req.params["n"])))
    try:
        barrier.wait(timeout=float(req.params.get("timeout", "60")))
    except threading.BrokenBarrierError:
        return func.HttpResponse("the calls were not in progress together", status_code=503)
    return func.HttpResponse(json.dumps({"thread": threading.get_ident()}))


@app.route(route="async", auth_level=func.AuthLevel.ANONYMOUS)
async def asynchronous(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0.01)
    return func.HttpResponse("async ok")


@app.route(route="async-thread", auth_level=func.AuthLevel.ANONYMOUS)
async def async_thread(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0)
    return func.HttpResponse(threading.current_thread().name)


@app.timer_trigger(schedule="* * * * * *", arg_name="timer", run_on_startup=False)
def every_second(timer: func.TimerRequest) -> None:
    with open(os.environ["SAMPLE_TIMER_FILE"], "a") as handle:
        handle.write(f"tick {timer.past_due}\n")


@app.timer_trigger(schedule="%SAMPLE_SCHEDULE%", arg_name="timer", run_on_startup=True)
def from_setting(timer: func.TimerRequest) -> None:
    with open(os.environ["SAMPLE_SETTING_FILE"], "a") as handle:
        handle.write("ran\n")


app.register_functions(bp)
