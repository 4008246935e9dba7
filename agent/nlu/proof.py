"""Before a caller's words go to the NLU server, the server proves it knows the secret.

Anything local can listen on the NLU port while the real server is down (a restart, a
crash, before it starts). So the agent sends ``PROOF_ROUNDS`` pairs of ``GET /status``,
each pair one JWT signed with the real secret and one signed with a fresh random decoy
key, in random order, one request at a time. The real Rasa answers 200 to the first kind
and 401 to the second; a stand-in cannot tell the two apart without the secret, so it
passes one round by luck with probability 1/2 and all of them with 2**-PROOF_ROUNDS.
The secret itself is never sent (see ``agent.nlu.auth``), so a failed proof leaks nothing
a later attempt could use.

Proof is asked for before the first parse and again after any failed request (the server
may have been replaced meanwhile). What is left open: a server replaced between two
successful requests without the agent seeing an error gets the next request before the
agent notices; while the real server runs, it holds the port, and another local user
cannot share it (``SO_REUSEPORT`` needs the same user).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence

import httpx

from agent.nlu.auth import bearer, decoy_key

PROOF_ROUNDS = 16
REFUSED = frozenset({401, 403})


def proof_plan(rounds: int) -> list[bool]:
    """Which requests carry the real JWT (True) and which a decoy, in random order."""
    plan: list[bool] = []
    for _ in range(rounds):
        real_first = secrets.randbelow(2) == 1
        plan += [real_first, not real_first]
    return plan


def proof_holds(plan: Sequence[bool], statuses: Sequence[int]) -> bool:
    """True only when every real request got 200 and every decoy 401 or 403."""
    if len(plan) != len(statuses) or not plan:
        return False
    return all(
        (status == 200) if real else (status in REFUSED)
        for real, status in zip(plan, statuses, strict=True)
    )


async def server_proves_secret(
    client: httpx.AsyncClient, secret: str, rounds: int = PROOF_ROUNDS
) -> bool:
    """Ask the server at ``client``'s base URL to tell real JWTs from decoys."""
    plan = proof_plan(rounds)
    statuses: list[int] = []
    for real in plan:
        key = secret if real else decoy_key()
        response = await client.get("/status", headers=bearer(key, time.time()))
        statuses.append(response.status_code)
        if not proof_holds(plan[: len(statuses)], statuses):
            return False  # one wrong answer settles it
    return proof_holds(plan, statuses)
