"""Prompt: the normalized request from the profile and the message (later: conversation context,
steering). The model and provider options are set per target by the call stage."""

from __future__ import annotations

from gateway_app.contract.events import AgentProfile, MessageCreated
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.stage import Services
from gateway_app.providers.base import ChatMessage, ChatRequest


def build_request(profile: AgentProfile, message: MessageCreated) -> ChatRequest:
    return ChatRequest(
        model=profile.model,
        system_prompt=profile.system_prompt,
        messages=(ChatMessage("user", message.content),),
        temperature=profile.temperature,
        max_tokens=profile.max_tokens,
        stop=tuple(profile.stop),
        tools=tuple({"type": "function", "function": tool.function.model_dump()} for tool in profile.tools),
        options=profile.options,
    )


class Prompt:
    name = "prompt"

    def __init__(self, services: Services) -> None:
        pass

    async def run(self, ctx: MessageContext) -> None:
        ctx.request = build_request(ctx.require_profile(), ctx.message)
