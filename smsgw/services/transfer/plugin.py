"""The credit transfer in the registry (services/registry.py)."""

from __future__ import annotations

from smsgw.services.registry import ServicePlugin
from smsgw.services.transfer.load import LOAD_KINDS
from smsgw.services.transfer.service import TransferService

PLUGIN = ServicePlugin(
    name="transfer",
    build=lambda context: TransferService(context.settings.transfer, context.store,
                                          context.hasher, context.settings.replies.language),
    load_kinds=LOAD_KINDS,
)
