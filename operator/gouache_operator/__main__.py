"""`python -m gouache_operator` (or `gouache-operator`): runs the operator until SIGTERM."""

from __future__ import annotations

import logging

import kopf

from gouache.runtime.logging import configure_logging
from gouache_operator.handlers import build_registry
from gouache_operator.settings import OperatorSettings


def main() -> None:
    """Reads GOUACHE_OPERATOR_* settings and runs the Kopf reactor in this process."""
    settings = OperatorSettings()
    configure_logging("operator", level=settings.log_level, json_output=settings.log_json)
    # Every API request and every timer run at INFO would bury the rollout's own lines.
    for chatty in ("httpx", "kopf.objects"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    namespaces = settings.namespace_list()
    kopf.run(
        registry=build_registry(settings),
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=settings.liveness_endpoint or None,
    )


if __name__ == "__main__":
    main()
