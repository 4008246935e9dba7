"""``voice-agent run``: the long-running service.

Brings up what calls need (database, NLU server, speech models), answers SIP calls until
SIGTERM/SIGINT, then drains (new calls get 503, calls in progress go on for up to ``[sip]
drain_seconds``; a second signal ends the drain), lets the calls still up end with a short
goodbye and exits 0. An NLU server that does not answer does not stop it: callers who need
it are transferred until it is back (``agent.nlu.supervisor``).
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
import sys
from zoneinfo import ZoneInfo

from agent.admin.retention import DailyPrune
from agent.background import BackgroundServices
from agent.billing.db import close_database
from agent.config import Config
from agent.memory import limit_malloc_arenas
from agent.nlu.supervisor import NluState, NluSupervisor
from agent.sip.endpoint import SipEndpoint
from agent.voice.instance import instance_name
from agent.voice.interrupted import claim_instance, close_interrupted_calls_at_start
from agent.voice.server import VoiceServer, build_voice_services
from agent.voice.services import VoiceServices
from agent.watchdog import sd_notify

log = logging.getLogger(__name__)


def run_service(config: Config) -> int:
    limit_malloc_arenas()  # before the models' threads exist (agent.memory)
    faulthandler.enable(all_threads=True)  # a crash or the watchdog's SIGABRT: every stack
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1: the same, and it runs on
    nlu = NluSupervisor.from_settings(config.nlu)  # setup mistakes stop the start here
    services = build_voice_services(config)  # fail early (models) before starting Rasa
    nlu.prepare()
    try:
        asyncio.run(_serve(config, services, nlu))
    finally:
        nlu.stop_server()
    log.info("voice-agent stopped")
    _exit_now(0)
    return 0  # not reached


def _exit_now(status: int) -> None:
    """Leave without the interpreter's teardown.

    Everything is already shut down (calls ended, pjsua2 destroyed on its thread, Rasa
    stopped, every row committed). What is left is the native libraries' global teardown
    (pjsua2, CTranslate2, onnxruntime) at interpreter exit, which crashed once in a full test
    run (SIGSEGV after "voice-agent stopped"); an exit status that is not 0 would make the
    service manager report a clean stop as a failure.
    """
    close_database()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _stopping(stop: asyncio.Event, hurry: asyncio.Event) -> None:
    """The first SIGTERM/SIGINT starts the drain (``VoiceServer.serve``); the next ends it."""
    if not stop.is_set():
        sd_notify("STOPPING=1")
        stop.set()
    elif not hurry.is_set():
        log.info("second stop signal: calls in progress hear the goodbye now")
        hurry.set()


async def _serve(config: Config, services: VoiceServices, nlu: NluSupervisor) -> None:
    stop, hurry = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _stopping, stop, hurry)
    if not await _nlu_started(nlu, stop):
        return  # asked to stop while a managed NLU server was starting
    # Calls a killed run left open: closed as "interrupted" before any call is answered;
    # on a shared database, all of this box's own (its claim on its name is held until exit).
    claim = await claim_instance(instance_name(config.agent, config.sip))
    await close_interrupted_calls_at_start(config.sip.max_call_seconds, claim)
    background = BackgroundServices(config, services.outbox)
    await background.start()
    # Old call events: pruned now and daily, in a worker thread (agent.admin.retention).
    prune = DailyPrune(config.database.keep_call_events_days, ZoneInfo(config.agent.time_zone))
    pruning = asyncio.create_task(prune.run(), name="daily-prune")
    watching = asyncio.create_task(nlu.watch(), name="nlu-watch")
    try:
        await _answer_calls(config, services, stop, background, nlu, hurry=hurry)
    finally:
        pruning.cancel()
        watching.cancel()
        await asyncio.gather(pruning, watching, return_exceptions=True)
        await nlu.aclose()
        await background.stop()
        await services.close_records()  # records the database refused: a last try
        if claim is not None:
            await asyncio.to_thread(claim.release)


async def _nlu_started(nlu: NluSupervisor, stop: asyncio.Event) -> bool:
    """The NLU server's first look (with ``manage``, its start, up to its start-up timeout),
    unless a stop comes first. It never fails: without the server, callers are transferred."""
    starting = asyncio.create_task(nlu.start(), name="nlu-start")
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if starting.done():
        starting.result()
        return True
    starting.cancel()
    await asyncio.gather(starting, return_exceptions=True)
    await nlu.aclose()
    return False


async def _answer_calls(
    config: Config,
    services: VoiceServices,
    stop: asyncio.Event,
    background: BackgroundServices,
    nlu: NluSupervisor,
    *,
    hurry: asyncio.Event,
) -> None:
    endpoint = SipEndpoint(config.sip, region=config.agent.default_region)
    server = VoiceServer(endpoint, services)
    serving = asyncio.create_task(server.serve(stop, hurry))
    ready = asyncio.ensure_future(server.ready.wait())
    await asyncio.wait({ready, serving}, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if not serving.done():
        sip = config.sip
        nlu_url = config.nlu.url
        if nlu.state is not NluState.ANSWERING:
            nlu_url += " (not answering: see the log)"
        print(
            f"voice-agent ready for {config.agent.company_name}: answering SIP on "
            f"{sip.transport} {sip.listen_address}:{endpoint.bound_port}, NLU at {nlu_url}, "
            f"ASR {config.asr.model}, pay pages on {background.web_url}, admin (metrics, "
            f"dashboard) on {background.admin_url}. Stop with Ctrl-C or SIGTERM.",
            flush=True,
        )
        sd_notify("READY=1")
    await serving
