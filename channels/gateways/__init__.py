"""Gateways: how a channel worker reaches people. Chosen by ANTIFRAUD_CHANNEL_GATEWAY; the human channels
named in ANTIFRAUD_DESK_CHANNELS go to the dissuasion desk instead (channels.gateways.desk)."""

from __future__ import annotations

from channels.gateways.base import Gateway, GatewayReply
from channels.gateways.simulated import SimulatedGateway
from channels.gateways.webhook import WebhookGateway
from streams.contracts.actions import Channel
from streams.settings import Settings

__all__ = ["Gateway", "GatewayReply", "SimulatedGateway", "WebhookGateway", "make_gateway"]


def make_gateway(settings: Settings, channel: Channel) -> Gateway:
    if channel.value in settings.desk_channels:
        from channels.gateways.desk import DeskGateway  # imports the ledger (SQLAlchemy) only when used

        return DeskGateway(settings, channel)
    if settings.channel_gateway == "webhook":
        return WebhookGateway(settings, channel)
    return SimulatedGateway(channel, settings.gateway_simulated_seed, settings.gateway_simulated_time_scale,
                            settings.gateway_simulated_concurrency)
