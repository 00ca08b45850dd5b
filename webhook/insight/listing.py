"""One paged list from the API server, as raw JSON pages parsed with orjson (no client models).

    for page in list_pages(core.list_pod_for_all_namespaces, what="pods"):
        ...

`list_call` is any list method of the `kubernetes` client (CoreV1Api, CustomObjectsApi...),
with its positional arguments; pages of `page_size` items are asked for with `limit` and
`continue`, so a 150,000-pod cluster is never one response. Failures are `ListError`s whose
message says what was listed and what the API server answered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson
from kubernetes import client


class ListError(ValueError):
    """A list that failed; `status` is the API server's HTTP status, None when unreachable."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


def list_pages(
    list_call: Callable[..., Any], *args: Any, what: str, page_size: int = 500
) -> Iterator[list[Mapping[str, Any]]]:
    token = None
    while True:
        kwargs: dict[str, Any] = {"limit": page_size, "_preload_content": False}
        if token:
            kwargs["_continue"] = token
        try:
            response = list_call(*args, **kwargs)
            page = orjson.loads(response.data)
            response.release_conn()
        except client.ApiException as err:
            raise ListError(
                f"listing {what}: the API server answered {err.status} {err.reason}", err.status
            ) from None
        except Exception as err:  # noqa: BLE001 - connection trouble, said in one line
            raise ListError(f"listing {what}: {err}", None) from None
        yield page.get("items") or []
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return
