"""Gateways: how a channel worker reaches people. Chosen by ANTIFRAUD_CHANNEL_GATEWAY."""

from __future__ import annotations

from channels.gateways.base import Gateway, GatewayReply
from channels.gateways.simulated import SimulatedGateway
from channels.gateways.webhook import WebhookGateway
from streams.contracts.actions import Channel
from streams.settings import Settings

__all__ = ["Gateway", "GatewayReply", "SimulatedGateway", "WebhookGateway", "make_gateway"]


def make_gateway(settings: Settings, channel: Channel) -> Gateway:
    if settings.channel_gateway == "webhook":
        return WebhookGateway(settings, channel)
    return SimulatedGateway(channel, settings.gateway_simulated_seed, settings.gateway_simulated_time_scale,
                            settings.gateway_simulated_concurrency)
