"""The bare baseline podtier is measured against: the same server stack, no admission logic.

    /work/venv/bin/python bench/baseline_app.py --cert-dir DIR --port 9443

uvicorn (uvloop + httptools, one worker, the same keep-alive and TLS context as podtier), a
Starlette route per webhook that reads the body, decodes the AdmissionReview with orjson,
checks its `request.uid`, and answers a canned "allowed" response echoing the uid.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import uvicorn  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from podtier.certs.tls import server_context  # noqa: E402
from podtier.webhook.http.server import KEEP_ALIVE_SECONDS  # noqa: E402


async def admit(request: Request) -> Response:
    review = orjson.loads(await request.body())
    uid = review["request"]["uid"]
    answer = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": uid, "allowed": True},
    }
    return Response(orjson.dumps(answer), media_type="application/json")


async def readyz(request: Request) -> Response:
    return Response(b'{"ready":true}', media_type="application/json")


def create_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/mutate", admit, methods=["POST"]),
            Route("/validate", admit, methods=["POST"]),
            Route("/readyz", readyz, methods=["GET"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="bare uvicorn + starlette + orjson over TLS")
    parser.add_argument("--cert-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    ctx = server_context(args.cert_dir / "tls.crt", args.cert_dir / "tls.key")
    config = uvicorn.Config(
        create_app(),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        ssl_context_factory=lambda config, default: ctx,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
